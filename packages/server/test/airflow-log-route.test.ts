import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  type AttemptKey,
  LocalStore,
  loadAgentTokenKeys,
  PathTemplate,
  signAgentToken,
} from '@tasklog/core';
import { createAgentApp, startServer } from '@tasklog/server';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { agentLogPath, HS512_SECRET } from './agent-fixture.js';
import { key, type RawResponse, rawGet } from './fixture.js';

// Tokens and requests are made by Python's PyJWT, as Airflow makes them (see the script).
const SCRIPT = fileURLToPath(new URL('./airflow-token.py', import.meta.url));
const PYTHON = '/usr/bin/python3';
const run = promisify(execFile);

// Shaped like the key Airflow generates when none is configured (16 random bytes, base64).
const AIRFLOW_SECRET = randomBytes(16).toString('base64');

interface TokenSpec {
  generation: 2 | 3;
  filename: string;
  secret?: string;
  grace?: number;
  shift?: number;
  alg?: string;
  aud?: string;
  drop?: string[];
}

async function airflowToken(spec: TokenSpec): Promise<string> {
  const { stdout } = await run(PYTHON, [
    SCRIPT,
    'token',
    JSON.stringify({ secret: AIRFLOW_SECRET, ...spec }),
  ]);
  return stdout.trim();
}

/** A GET made by Python the way Airflow's reader makes it. */
async function airflowFetch(
  base: string,
  spec: TokenSpec & { path?: string },
): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const { stdout } = await run(PYTHON, [
    SCRIPT,
    'fetch',
    JSON.stringify({ secret: AIRFLOW_SECRET, base, ...spec }),
  ]);
  const out = JSON.parse(stdout) as {
    status: number;
    headers: Record<string, string>;
    body: string;
  };
  return { ...out, body: Buffer.from(out.body, 'base64') };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function startAirflowAgent(options: { airflow?: boolean } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'tasklog-airflow-'));
  const base = join(dir, 'logs');
  await mkdir(base, { recursive: true });
  const pathTemplate = new PathTemplate();
  const keys = await loadAgentTokenKeys({ algorithm: 'HS512', secret: HS512_SECRET });
  const archive = new LocalStore({ root: join(dir, 'archive'), pathTemplate });
  const logger = pino({ level: 'silent' });
  const app = createAgentApp({
    baseLogFolder: base,
    pathTemplate,
    keys,
    logger,
    airflow:
      options.airflow === false ? undefined : { secretKey: AIRFLOW_SECRET, clockGraceSeconds: 30 },
    archive,
  });
  const running = await startServer({
    app,
    host: '127.0.0.1',
    port: 0,
    shutdownTimeoutMs: 1000,
    logger,
  });
  const fileOf = (k: AttemptKey) => join(base, ...pathTemplate.render(k).split('/'));
  return {
    dir,
    base,
    url: running.url,
    pathTemplate,
    keys,
    archive,
    fileOf,
    async writeLog(k: AttemptKey, bytes: Uint8Array | string) {
      const file = fileOf(k);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, bytes);
      return file;
    },
    get: (path: string, authorization?: string) =>
      rawGet(running.url, path, authorization === undefined ? {} : { authorization }),
    async close() {
      await running.close();
      await archive.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

type AirflowAgent = Awaited<ReturnType<typeof startAirflowAgent>>;

/**
 * The request path for a relative log path as Airflow's client sends it: requests' requote_uri
 * leaves the `=`, `:` and `+` of Airflow's paths as they are.
 */
function airflowPath(rel: string): string {
  return `/log/${rel}`;
}

describe('the agent as Airflow log server', () => {
  let f: AirflowAgent;
  let rel: string;
  let bytes: Buffer;
  beforeEach(async () => {
    f = await startAirflowAgent();
    rel = f.pathTemplate.render(key());
    bytes = randomBytes(200_000);
    await f.writeLog(key(), bytes);
  });
  afterEach(async () => {
    await f.close();
  });

  it("answers an Airflow 2 token with exactly the file's bytes, as application/json", async () => {
    const res = await f.get(airflowPath(rel), await airflowToken({ generation: 2, filename: rel }));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['content-length']).toBe(String(bytes.length));
    expect(sha(res.body)).toBe(sha(bytes));
  });

  it("answers an Airflow 3 token with exactly the file's bytes, as text/plain", async () => {
    const res = await f.get(airflowPath(rel), await airflowToken({ generation: 3, filename: rel }));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.headers['content-length']).toBe(String(bytes.length));
    expect(sha(res.body)).toBe(sha(bytes));
  });

  it('sends a growing log as far as it was written when opened, with that Content-Length', async () => {
    const file = f.fileOf(key());
    const written = [bytes];
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const piece = randomBytes(4096);
        written.push(piece);
        await appendFile(file, piece);
      }
    })();
    try {
      for (let i = 0; i < 5; i++) {
        const res = await f.get(
          airflowPath(rel),
          await airflowToken({ generation: 3, filename: rel }),
        );
        const sofar = Buffer.concat(written);
        expect(res.status).toBe(200);
        expect(res.body.length).toBe(Number(res.headers['content-length']));
        expect(res.body.length).toBeGreaterThanOrEqual(bytes.length);
        expect(res.body.equals(sofar.subarray(0, res.body.length))).toBe(true);
      }
    } finally {
      writing = false;
      await writer;
    }
    const last = await f.get(
      airflowPath(rel),
      await airflowToken({ generation: 2, filename: rel }),
    );
    expect(sha(last.body)).toBe(sha(Buffer.concat(written)));
  });

  it('answers a single byte range with 206, as Werkzeug and Starlette do', async () => {
    const res = await rawGet(f.url, airflowPath(rel), {
      authorization: await airflowToken({ generation: 2, filename: rel }),
      range: 'bytes=100-199',
    });
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe(`bytes 100-199/${bytes.length}`);
    expect(res.body.equals(bytes.subarray(100, 200))).toBe(true);
  });

  describe('clock grace', () => {
    it.each([
      ['Airflow 3, expired 20 s ago, within the 30 s grace', 3, -50],
      ['Airflow 3, issued 20 s in the future', 3, 20],
      ["Airflow 2, expired 3 s ago, within JWTSigner's 5 s leeway", 2, -33],
      ['Airflow 2, issued 3 s in the future', 2, 3],
    ] as const)('accepts a token of %s', async (_name, generation, shift) => {
      const res = await f.get(
        airflowPath(rel),
        await airflowToken({ generation, filename: rel, shift }),
      );
      expect(res.status).toBe(200);
      expect(sha(res.body)).toBe(sha(bytes));
    });

    it.each([
      ['Airflow 3, expired 40 s ago, beyond the 30 s grace', 3, -70],
      ['Airflow 3, issued 40 s in the future', 3, 40],
      ["Airflow 2, expired 10 s ago, beyond JWTSigner's 5 s leeway", 2, -40],
      ['Airflow 2, issued 10 s in the future', 2, 10],
    ] as const)('refuses a token of %s with 403', async (_name, generation, shift) => {
      const res = await f.get(
        airflowPath(rel),
        await airflowToken({ generation, filename: rel, shift }),
      );
      expect(res.status).toBe(403);
      expect(res.body.includes(bytes.subarray(0, 64))).toBe(false);
    });
  });

  describe('refuses, without one byte of the log,', () => {
    function expectRefused(res: RawResponse, status: number) {
      expect(res.status).toBe(status);
      expect(res.body.length).toBeLessThan(1000);
      expect(res.body.includes(bytes.subarray(0, 32))).toBe(false);
    }

    it('a token for another audience (it is not routed to the Airflow verifier: 401)', async () => {
      const token = await airflowToken({ generation: 3, filename: rel, aud: 'different-audience' });
      expectRefused(await f.get(airflowPath(rel), token), 401);
    });

    it('a token for another file, with 403', async () => {
      const other = f.pathTemplate.render(key({ tryNumber: 2 }));
      await f.writeLog(key({ tryNumber: 2 }), 'the other log\n');
      expectRefused(
        await f.get(airflowPath(rel), await airflowToken({ generation: 2, filename: other })),
        403,
      );
    });

    it.each(['HS256', 'HS384', 'none'])('a token signed with %s, with 403', async (alg) => {
      const token = await airflowToken({ generation: 3, filename: rel, alg });
      expectRefused(await f.get(airflowPath(rel), token), 403);
    });

    it('a token signed with another secret, with 403', async () => {
      const token = await airflowToken({ generation: 2, filename: rel, secret: 'not-the-secret' });
      expectRefused(await f.get(airflowPath(rel), token), 403);
    });

    it.each(['exp', 'iat', 'nbf'])('a token without %s, with 403', async (claim) => {
      const token = await airflowToken({ generation: 2, filename: rel, drop: [claim] });
      expectRefused(await f.get(airflowPath(rel), token), 403);
    });

    it('a token without filename, with 403', async () => {
      const token = await airflowToken({ generation: 3, filename: rel, drop: ['filename'] });
      expectRefused(await f.get(airflowPath(rel), token), 403);
    });

    it("an Airflow token sent as 'Bearer', which Airflow's jwt.decode refuses, with 403", async () => {
      const token = await airflowToken({ generation: 3, filename: rel });
      expectRefused(await f.get(airflowPath(rel), `Bearer ${token}`), 403);
    });

    it('a request without an Authorization header (tasklog answers: 401)', async () => {
      expectRefused(await f.get(airflowPath(rel)), 401);
    });
  });

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
        const planted = join(f.base, ...prefix.split('/'), ...rel.split('/'));
        await mkdir(dirname(planted), { recursive: true });
        await writeFile(planted, SECRET);
        const token = await airflowToken({ generation: 3, filename: rel });
        const res = await f.get(airflowPath(`${prefix}/${rel}`), token);
        expect(res.status).toBe(403);
        expectNoLog(res);
      },
    );

    it('a token for F does not open F.trigger.7.log (F a prefix of the path), with 403', async () => {
      await writeFile(`${f.fileOf(key())}.trigger.7.log`, SECRET);
      const token = await airflowToken({ generation: 2, filename: rel });
      const res = await f.get(airflowPath(`${rel}.trigger.7.log`), token);
      expect(res.status).toBe(403);
      expectNoLog(res);
    });

    it('a token for F.trigger.7.log does not open F (the path a prefix of filename), with 403', async () => {
      const token = await airflowToken({ generation: 2, filename: `${rel}.trigger.7.log` });
      const res = await f.get(airflowPath(rel), token);
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
        const res = await f.get(airflowPath(path), await airflowToken({ generation: 3, filename }));
        expect(res.status).toBe(400);
        expectNoLog(res);
      }
    });

    it('a percent-encoded path is decoded once, as Werkzeug and Starlette decode it', async () => {
      const token = await airflowToken({ generation: 2, filename: rel });
      const ok = await f.get(agentLogPath(rel), token);
      expect(ok.status).toBe(200);
      expect(sha(ok.body)).toBe(sha(bytes));
      // A token naming the encoded form is not the decoded path.
      const encoded = await airflowToken({
        generation: 2,
        filename: agentLogPath(rel).slice('/log/'.length),
      });
      const asEncoded = await f.get(agentLogPath(rel), encoded);
      expect(asEncoded.status).toBe(403);
      expectNoLog(asEncoded);
      // Nor is anything decoded twice.
      const twice = agentLogPath(rel).replaceAll('%', '%25');
      const res = await f.get(twice, token);
      expect(res.status).toBe(403);
      expectNoLog(res);
    });

    it('case and Unicode normalisation count: a token for F does not open f', async () => {
      const upper = rel.replace('dag_id=etl', 'DAG_ID=etl');
      let res = await f.get(
        airflowPath(upper),
        await airflowToken({ generation: 3, filename: rel }),
      );
      expect(res.status).toBe(403);
      expectNoLog(res);
      const nfc = f.pathTemplate.render(key({ dagId: 'caf\u00e9' }));
      await f.writeLog(key({ dagId: 'caf\u00e9' }), SECRET);
      const nfd = nfc.normalize('NFD');
      expect(nfd).not.toBe(nfc);
      res = await f.get(agentLogPath(nfd), await airflowToken({ generation: 3, filename: nfc }));
      expect(res.status).toBe(403);
      expectNoLog(res);
    });
  });

  describe('files', () => {
    it('answers 404 for an attempt with neither a local file nor an archived log', async () => {
      const other = f.pathTemplate.render(key({ taskId: 'nowhere' }));
      const res = await f.get(
        airflowPath(other),
        await airflowToken({ generation: 2, filename: other }),
      );
      expect(res.status).toBe(404);
    });

    it('answers 404 for a path that is not an attempt log, even with its token', async () => {
      await writeFile(join(f.base, 'secret.txt'), 'top secret');
      const res = await f.get(
        '/log/secret.txt',
        await airflowToken({ generation: 3, filename: 'secret.txt' }),
      );
      expect(res.status).toBe(404);
      expect(res.body.toString()).not.toContain('top secret');
    });

    it('serves an attempt whose local file was deleted after shipping from the archive', async () => {
      const k = key({ taskId: 'shipped' });
      const shipped = randomBytes(300_000);
      const file = await f.writeLog(k, shipped);
      const writer = await f.archive.openWriter(k);
      await writer.append(shipped);
      await writer.finish({ size: shipped.length, sha256: sha(shipped) });
      await unlink(file);
      const shippedRel = f.pathTemplate.render(k);
      for (const generation of [2, 3] as const) {
        const res = await f.get(
          airflowPath(shippedRel),
          await airflowToken({ generation, filename: shippedRel }),
        );
        expect(res.status).toBe(200);
        expect(res.headers['content-length']).toBe(String(shipped.length));
        expect(sha(res.body)).toBe(sha(shipped));
      }
    });

    it('refuses a symlink planted as the log, out of the base folder or inside it', async () => {
      const outside = join(f.dir, 'outside.txt');
      await writeFile(outside, 'outside the base folder');
      for (const [taskId, target] of [
        ['linked-out', outside],
        ['linked-in', f.fileOf(key())],
      ] as const) {
        const k = key({ taskId });
        const file = f.fileOf(k);
        await mkdir(dirname(file), { recursive: true });
        await symlink(target, file);
        const linkedRel = f.pathTemplate.render(k);
        const res = await f.get(
          airflowPath(linkedRel),
          await airflowToken({ generation: 3, filename: linkedRel }),
        );
        expect(res.status).toBe(400);
        expect(res.body.toString()).not.toContain('outside the base folder');
        expect(res.body.includes(bytes.subarray(0, 32))).toBe(false);
      }
    });
  });

  describe("tasklog's own tokens on the same route", () => {
    it('still serve the log to the proxy', async () => {
      const res = await f.get(
        agentLogPath(rel),
        `Bearer ${await signAgentToken(f.keys, { relativePath: rel })}`,
      );
      expect(res.status).toBe(200);
      expect(res.headers['x-tasklog-complete']).toBe('false');
      expect(sha(res.body)).toBe(sha(bytes));
    });

    it('are not accepted by the Airflow verifier, even sent bare', async () => {
      const res = await f.get(
        agentLogPath(rel),
        await signAgentToken(f.keys, { relativePath: rel }),
      );
      expect(res.status).toBe(401);
    });
  });

  describe('a real HTTP client, the way Airflow calls', () => {
    it.each([2, 3] as const)('Airflow %i gets the same bytes', async (generation) => {
      const res = await airflowFetch(f.url, { generation, filename: rel });
      expect(res.status).toBe(200);
      // Airflow 3 reads response.raw up to Content-Length: no compression, an exact length.
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.headers['content-length']).toBe(String(bytes.length));
      expect(sha(res.body)).toBe(sha(bytes));
    });

    it('gets 403 for a token made with another secret', async () => {
      const res = await airflowFetch(f.url, {
        generation: 3,
        filename: rel,
        secret: 'another-secret',
      });
      expect(res.status).toBe(403);
      expect(res.body.includes(bytes.subarray(0, 32))).toBe(false);
    });
  });
});

describe('the agent without agent.airflow_secret_key', () => {
  it('refuses Airflow tokens: only tasklog tokens are verified', async () => {
    const f = await startAirflowAgent({ airflow: false });
    try {
      const rel = f.pathTemplate.render(key());
      await f.writeLog(key(), 'the live log\n');
      const token = await airflowToken({ generation: 3, filename: rel });
      for (const authorization of [token, `Bearer ${token}`]) {
        const res = await f.get(airflowPath(rel), authorization);
        expect(res.status).toBe(401);
        expect(res.body.toString()).not.toContain('the live log');
      }
      const ok = await f.get(
        agentLogPath(rel),
        `Bearer ${await signAgentToken(f.keys, { relativePath: rel })}`,
      );
      expect(ok.body.toString()).toBe('the live log\n');
    } finally {
      await f.close();
    }
  });
});
