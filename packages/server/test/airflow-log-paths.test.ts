import { randomBytes } from 'node:crypto';
import { mkdir, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { agentLogPath } from './agent-fixture.js';
import * as fx from './airflow-agent-fixture.js';
import { key, type RawResponse } from './fixture.js';

// The paths Airflow's tokens open on the agent: the whole decoded path must be the token's
// filename; the files behind them; and Python's HTTP client as Airflow calls.
describe('the agent as Airflow log server', () => {
  fx.serveOneLogPerTest();

  describe('compares filename with the whole decoded path (CVE-2026-45426 and kin)', () => {
    const SECRET = `not-for-you-${randomBytes(8).toString('hex')}`;
    function expectNoLog(res: RawResponse) {
      expect(res.body.toString('latin1')).not.toContain(SECRET);
      expect(res.body.includes(fx.bytes.subarray(0, 32))).toBe(false);
    }

    // Airflow 3.0-3.2.1 compared request.url.path.lstrip("/log/"), which strips any of `/ l o g`:
    // a token for F also opened `log/F`, `gol/F`, `lo/F` ... below the base folder.
    it.each(['log', 'gol', 'lo', 'g/log'])(
      'a token for F does not open %s/F, with 403',
      async (prefix) => {
        const planted = join(fx.agent.base, ...prefix.split('/'), ...fx.rel.split('/'));
        await mkdir(dirname(planted), { recursive: true });
        await writeFile(planted, SECRET);
        const token = await fx.airflowToken({ generation: 3, filename: fx.rel });
        const res = await fx.agent.get(fx.airflowPath(`${prefix}/${fx.rel}`), token);
        expect(res.status).toBe(403);
        expectNoLog(res);
      },
    );

    it('a token for F does not open F.trigger.7.log (F a prefix of the path), with 403', async () => {
      await writeFile(`${fx.agent.fileOf(key())}.trigger.7.log`, SECRET);
      const token = await fx.airflowToken({ generation: 2, filename: fx.rel });
      const res = await fx.agent.get(fx.airflowPath(`${fx.rel}.trigger.7.log`), token);
      expect(res.status).toBe(403);
      expectNoLog(res);
    });

    it('a token for F.trigger.7.log does not open F (the path a prefix of filename), with 403', async () => {
      const token = await fx.airflowToken({ generation: 2, filename: `${fx.rel}.trigger.7.log` });
      const res = await fx.agent.get(fx.airflowPath(fx.rel), token);
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
      const path = make(fx.rel);
      for (const filename of [path, fx.rel]) {
        const res = await fx.airflowGet({ generation: 3, filename }, path);
        expect(res.status).toBe(400);
        expectNoLog(res);
      }
    });

    it('a percent-encoded path is decoded once, as Werkzeug and Starlette decode it', async () => {
      const token = await fx.airflowToken({ generation: 2, filename: fx.rel });
      const ok = await fx.agent.get(agentLogPath(fx.rel), token);
      expect(ok.status).toBe(200);
      expect(fx.sha(ok.body)).toBe(fx.sha(fx.bytes));
      // A token naming the encoded form is not the decoded path.
      const encoded = await fx.airflowToken({
        generation: 2,
        filename: agentLogPath(fx.rel).slice('/log/'.length),
      });
      const asEncoded = await fx.agent.get(agentLogPath(fx.rel), encoded);
      expect(asEncoded.status).toBe(403);
      expectNoLog(asEncoded);
      // Nor is anything decoded twice.
      const twice = agentLogPath(fx.rel).replaceAll('%', '%25');
      const res = await fx.agent.get(twice, token);
      expect(res.status).toBe(403);
      expectNoLog(res);
    });

    it('case and Unicode normalisation count: a token for F does not open f', async () => {
      const upper = fx.rel.replace('dag_id=etl', 'DAG_ID=etl');
      let res = await fx.airflowGet({ generation: 3 }, upper);
      expect(res.status).toBe(403);
      expectNoLog(res);
      const nfc = fx.agent.pathTemplate.render(key({ dagId: 'caf\u00e9' }));
      await fx.agent.writeLog(key({ dagId: 'caf\u00e9' }), SECRET);
      const nfd = nfc.normalize('NFD');
      expect(nfd).not.toBe(nfc);
      res = await fx.agent.get(
        agentLogPath(nfd),
        await fx.airflowToken({ generation: 3, filename: nfc }),
      );
      expect(res.status).toBe(403);
      expectNoLog(res);
    });
  });

  describe('files', () => {
    it('answers 404 for an attempt with neither a local file nor an archived log', async () => {
      const other = fx.agent.pathTemplate.render(key({ taskId: 'nowhere' }));
      const res = await fx.airflowGet({ generation: 2, filename: other });
      expect(res.status).toBe(404);
    });

    it('answers 404 for a path that is not an attempt log, even with its token', async () => {
      await writeFile(join(fx.agent.base, 'secret.txt'), 'top secret');
      const res = await fx.agent.get(
        '/log/secret.txt',
        await fx.airflowToken({ generation: 3, filename: 'secret.txt' }),
      );
      expect(res.status).toBe(404);
      expect(res.body.toString()).not.toContain('top secret');
    });

    it('serves an attempt whose local file was deleted after shipping from the archive', async () => {
      const k = key({ taskId: 'shipped' });
      const shipped = randomBytes(300_000);
      const file = await fx.agent.writeLog(k, shipped);
      const writer = await fx.agent.archive.openWriter(k);
      await writer.append(shipped);
      await writer.finish({ size: shipped.length, sha256: fx.sha(shipped) });
      await unlink(file);
      const shippedRel = fx.agent.pathTemplate.render(k);
      for (const generation of [2, 3] as const) {
        const res = await fx.airflowGet({ generation, filename: shippedRel });
        expect(res.status).toBe(200);
        expect(res.headers['content-length']).toBe(String(shipped.length));
        expect(fx.sha(res.body)).toBe(fx.sha(shipped));
      }
    });

    it('refuses a symlink planted as the log, out of the base folder or inside it', async () => {
      const outside = join(fx.agent.dir, 'outside.txt');
      await writeFile(outside, 'outside the base folder');
      for (const [taskId, target] of [
        ['linked-out', outside],
        ['linked-in', fx.agent.fileOf(key())],
      ] as const) {
        const k = key({ taskId });
        const file = fx.agent.fileOf(k);
        await mkdir(dirname(file), { recursive: true });
        await symlink(target, file);
        const linkedRel = fx.agent.pathTemplate.render(k);
        const res = await fx.airflowGet({ generation: 3, filename: linkedRel });
        expect(res.status).toBe(400);
        expect(res.body.toString()).not.toContain('outside the base folder');
        expect(res.body.includes(fx.bytes.subarray(0, 32))).toBe(false);
      }
    });
  });

  describe('a real HTTP client, the way Airflow calls', () => {
    it.each([2, 3] as const)('Airflow %i gets the same bytes', async (generation) => {
      const res = await fx.airflowFetch(fx.agent.url, { generation, filename: fx.rel });
      expect(res.status).toBe(200);
      // Airflow 3 reads response.raw up to Content-Length: no compression, an exact length.
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.headers['content-length']).toBe(String(fx.bytes.length));
      expect(fx.sha(res.body)).toBe(fx.sha(fx.bytes));
    });

    it('gets 403 for a token made with another secret', async () => {
      const res = await fx.airflowFetch(fx.agent.url, {
        generation: 3,
        filename: fx.rel,
        secret: 'another-secret',
      });
      expect(res.status).toBe(403);
      expect(res.body.includes(fx.bytes.subarray(0, 32))).toBe(false);
    });
  });
});
