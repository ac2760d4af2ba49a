import { randomBytes } from 'node:crypto';
import { mkdir, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentLogPath } from './agent-fixture.js';
import {
  agent,
  airflowFetch,
  airflowPath,
  airflowToken,
  bytes,
  rel,
  serveOneLogPerTest,
  sha,
} from './airflow-agent-fixture.js';
import { key, type RawResponse } from './fixture.js';

// The paths Airflow's tokens open on the agent: the whole decoded path must be the token's
// filename; the files behind them; and Python's HTTP client as Airflow calls.
describe('the agent as Airflow log server', () => {
  serveOneLogPerTest();

  describe('compares filename with the whole decoded path (CVE-2026-45426 and kin)', () => {
    const SECRET = `not-for-you-${randomBytes(8).toString('hex')}`;
    function expectNoLog(res: RawResponse) {
      expect(res.body.toString('latin1')).not.toContain(SECRET);
      expect(res.body.includes(bytes.subarray(0, 32))).toBe(false);
    }

    // Airflow 3.0-3.2.1 compared request.url.path.lstrip("/log/"), which strips any of `/ l o g`:
    // a token for F also opened `log/F`, `gol/F`, `lo/F` ... below the base folder.
    it.each(['log', 'gol', 'lo', 'g/log'])(
      'a token for F does not open %s/F, with 403',
      async (prefix) => {
        const planted = join(agent.base, ...prefix.split('/'), ...rel.split('/'));
        await mkdir(dirname(planted), { recursive: true });
        await writeFile(planted, SECRET);
        const token = await airflowToken({ generation: 3, filename: rel });
        const res = await agent.get(airflowPath(`${prefix}/${rel}`), token);
        expect(res.status).toBe(403);
        expectNoLog(res);
      },
    );

    it('a token for F does not open F.trigger.7.log (F a prefix of the path), with 403', async () => {
      await writeFile(`${agent.fileOf(key())}.trigger.7.log`, SECRET);
      const token = await airflowToken({ generation: 2, filename: rel });
      const res = await agent.get(airflowPath(`${rel}.trigger.7.log`), token);
      expect(res.status).toBe(403);
      expectNoLog(res);
    });

    it('a token for F.trigger.7.log does not open F (the path a prefix of filename), with 403', async () => {
      const token = await airflowToken({ generation: 2, filename: `${rel}.trigger.7.log` });
      const res = await agent.get(airflowPath(rel), token);
      expect(res.status).toBe(403);
      expectNoLog(res);
    });

    it.each([
      ['a ".." segment', (r: string) => r.replace('/', '/../dag_id=etl/')],
      ['a "." segment', (r: string) => `./${r}`],
      ['an empty segment ("//")', (r: string) => r.replace('/', '//')],
      ['a leading "/"', (r: string) => `/${r}`],
      ['a trailing "/"', (r: string) => `${r}/`],
      ['an encoded "/" (%2F)', (r: string) => r.replace('/', '%2F')],
      ['an encoded ".." (%2e%2e)', (r: string) => r.replace('/', '/%2e%2e/dag_id=etl/')],
    ])('a path with %s, with 400, even with a token naming that very path', async (_name, make) => {
      const path = make(rel);
      for (const filename of [path, rel]) {
        const res = await agent.get(
          airflowPath(path),
          await airflowToken({ generation: 3, filename }),
        );
        expect(res.status).toBe(400);
        expectNoLog(res);
      }
    });

    it('a percent-encoded path is decoded once, as Werkzeug and Starlette decode it', async () => {
      const token = await airflowToken({ generation: 2, filename: rel });
      const ok = await agent.get(agentLogPath(rel), token);
      expect(ok.status).toBe(200);
      expect(sha(ok.body)).toBe(sha(bytes));
      // A token naming the encoded form is not the decoded path.
      const encoded = await airflowToken({
        generation: 2,
        filename: agentLogPath(rel).slice('/log/'.length),
      });
      const asEncoded = await agent.get(agentLogPath(rel), encoded);
      expect(asEncoded.status).toBe(403);
      expectNoLog(asEncoded);
      // Nor is anything decoded twice.
      const twice = agentLogPath(rel).replaceAll('%', '%25');
      const res = await agent.get(twice, token);
      expect(res.status).toBe(403);
      expectNoLog(res);
    });

    it('case and Unicode normalisation count: a token for F does not open f', async () => {
      const upper = rel.replace('dag_id=etl', 'DAG_ID=etl');
      let res = await agent.get(
        airflowPath(upper),
        await airflowToken({ generation: 3, filename: rel }),
      );
      expect(res.status).toBe(403);
      expectNoLog(res);
      const nfc = agent.pathTemplate.render(key({ dagId: 'caf\u00e9' }));
      await agent.writeLog(key({ dagId: 'caf\u00e9' }), SECRET);
      const nfd = nfc.normalize('NFD');
      expect(nfd).not.toBe(nfc);
      res = await agent.get(
        agentLogPath(nfd),
        await airflowToken({ generation: 3, filename: nfc }),
      );
      expect(res.status).toBe(403);
      expectNoLog(res);
    });
  });

  describe('files', () => {
    it('answers 404 for an attempt with neither a local file nor an archived log', async () => {
      const other = agent.pathTemplate.render(key({ taskId: 'nowhere' }));
      const res = await agent.get(
        airflowPath(other),
        await airflowToken({ generation: 2, filename: other }),
      );
      expect(res.status).toBe(404);
    });

    it('answers 404 for a path that is not an attempt log, even with its token', async () => {
      await writeFile(join(agent.base, 'secret.txt'), 'top secret');
      const res = await agent.get(
        '/log/secret.txt',
        await airflowToken({ generation: 3, filename: 'secret.txt' }),
      );
      expect(res.status).toBe(404);
      expect(res.body.toString()).not.toContain('top secret');
    });

    it('serves an attempt whose local file was deleted after shipping from the archive', async () => {
      const k = key({ taskId: 'shipped' });
      const shipped = randomBytes(300_000);
      const file = await agent.writeLog(k, shipped);
      const writer = await agent.archive.openWriter(k);
      await writer.append(shipped);
      await writer.finish({ size: shipped.length, sha256: sha(shipped) });
      await unlink(file);
      const shippedRel = agent.pathTemplate.render(k);
      for (const generation of [2, 3] as const) {
        const res = await agent.get(
          airflowPath(shippedRel),
          await airflowToken({ generation, filename: shippedRel }),
        );
        expect(res.status).toBe(200);
        expect(res.headers['content-length']).toBe(String(shipped.length));
        expect(sha(res.body)).toBe(sha(shipped));
      }
    });

    it('refuses a symlink planted as the log, out of the base folder or inside it', async () => {
      const outside = join(agent.dir, 'outside.txt');
      await writeFile(outside, 'outside the base folder');
      for (const [taskId, target] of [
        ['linked-out', outside],
        ['linked-in', agent.fileOf(key())],
      ] as const) {
        const k = key({ taskId });
        const file = agent.fileOf(k);
        await mkdir(dirname(file), { recursive: true });
        await symlink(target, file);
        const linkedRel = agent.pathTemplate.render(k);
        const res = await agent.get(
          airflowPath(linkedRel),
          await airflowToken({ generation: 3, filename: linkedRel }),
        );
        expect(res.status).toBe(400);
        expect(res.body.toString()).not.toContain('outside the base folder');
        expect(res.body.includes(bytes.subarray(0, 32))).toBe(false);
      }
    });
  });

  describe('a real HTTP client, the way Airflow calls', () => {
    it.each([2, 3] as const)('Airflow %i gets the same bytes', async (generation) => {
      const res = await airflowFetch(agent.url, { generation, filename: rel });
      expect(res.status).toBe(200);
      // Airflow 3 reads response.raw up to Content-Length: no compression, an exact length.
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.headers['content-length']).toBe(String(bytes.length));
      expect(sha(res.body)).toBe(sha(bytes));
    });

    it('gets 403 for a token made with another secret', async () => {
      const res = await airflowFetch(agent.url, {
        generation: 3,
        filename: rel,
        secret: 'another-secret',
      });
      expect(res.status).toBe(403);
      expect(res.body.includes(bytes.subarray(0, 32))).toBe(false);
    });
  });
});
