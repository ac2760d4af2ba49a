import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { appendFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { COMPLETION_MARKER_SUFFIX, loadAgentTokenKeys } from '@tasklog/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AgentFixture, agentLogPath, startAgentFixture } from './agent-fixture.js';
import { key, rawGet } from './fixture.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('agent GET /log/*', () => {
  let f: AgentFixture;
  beforeEach(async () => {
    f = await startAgentFixture();
  });
  afterEach(async () => {
    await f.close();
  });

  it('answers /health with ok', async () => {
    const res = await fetch(`${f.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('sends the whole log and ends when not following', async () => {
    const k = key();
    const bytes = randomBytes(200_000);
    await f.writeLog(k, bytes);
    const rel = f.pathTemplate.render(k);
    const res = await rawGet(f.url, agentLogPath(rel), {
      authorization: `Bearer ${await f.token(rel)}`,
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-tasklog-offset']).toBe('0');
    expect(res.headers['x-tasklog-complete']).toBe('false');
    expect(sha(res.body)).toBe(sha(bytes));
  });

  it('sends the exact suffix from offset N', async () => {
    const k = key();
    const bytes = randomBytes(100_003);
    await f.writeLog(k, bytes);
    const rel = f.pathTemplate.render(k);
    const res = await rawGet(f.url, agentLogPath(rel, 'offset=77777'), {
      authorization: `Bearer ${await f.token(rel)}`,
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-tasklog-offset']).toBe('77777');
    expect(res.body.equals(bytes.subarray(77777))).toBe(true);
  });

  it('refuses an offset past the end with 416', async () => {
    const k = key();
    await f.writeLog(k, 'short');
    const rel = f.pathTemplate.render(k);
    const res = await rawGet(f.url, agentLogPath(rel, 'offset=6'), {
      authorization: `Bearer ${await f.token(rel)}`,
    });
    expect(res.status).toBe(416);
  });

  it('says the attempt is complete when its marker exists', async () => {
    const k = key();
    const file = await f.writeLog(k, 'all of it\n');
    await writeFile(`${file}${COMPLETION_MARKER_SUFFIX}`, '');
    const rel = f.pathTemplate.render(k);
    const res = await rawGet(f.url, agentLogPath(rel, 'follow=1'), {
      authorization: `Bearer ${await f.token(rel)}`,
    });
    expect(res.headers['x-tasklog-complete']).toBe('true');
    expect(res.body.toString()).toBe('all of it\n');
  });

  it('follows a growing log until the marker appears, byte for byte', async () => {
    const k = key();
    const file = await f.writeLog(k, '');
    const rel = f.pathTemplate.render(k);
    const written: Buffer[] = [];
    const response = rawGet(f.url, agentLogPath(rel, 'follow=1'), {
      authorization: `Bearer ${await f.token(rel)}`,
    });
    for (let i = 0; i < 40; i++) {
      const piece = randomBytes(1 + Math.floor(Math.random() * 50_000));
      written.push(piece);
      await appendFile(file, piece);
      await sleep(Math.floor(Math.random() * 30));
    }
    const last = randomBytes(12_345);
    written.push(last);
    await appendFile(file, last);
    await writeFile(`${file}${COMPLETION_MARKER_SUFFIX}`, '');
    const res = await response;
    expect(res.status).toBe(200);
    expect(res.headers['x-tasklog-complete']).toBe('false');
    expect(sha(res.body)).toBe(sha(Buffer.concat(written)));
  });

  it('stops polling the file when the client disconnects', async () => {
    let checks = 0;
    const g = await startAgentFixture({
      isFinished: async () => {
        checks++;
        return false;
      },
    });
    try {
      const k = key();
      await g.writeLog(k, 'first bytes\n');
      const rel = g.pathTemplate.render(k);
      const token = await g.token(rel);
      const { hostname, port } = new URL(g.url);
      await new Promise<void>((resolve) => {
        const req = http.request(
          {
            hostname,
            port,
            path: agentLogPath(rel, 'follow=1'),
            headers: { authorization: `Bearer ${token}` },
            agent: false,
          },
          (res) => res.once('data', () => setTimeout(() => req.destroy(), 300)),
        );
        // Destroying our own request is the point; its error is expected.
        req.on('error', () => undefined);
        req.on('close', () => resolve());
        req.end();
      });
      expect(checks).toBeGreaterThan(1); // it was following
      await sleep(300); // let the server notice the closed socket
      const after = checks;
      await sleep(500);
      expect(checks).toBe(after);
    } finally {
      await g.close();
    }
  });
});

describe('agent GET /log/* refuses', () => {
  const SECRET_TEXT = `top-secret-${randomBytes(8).toString('hex')}`;
  let f: AgentFixture;
  let rel: string;
  beforeEach(async () => {
    f = await startAgentFixture();
    rel = f.pathTemplate.render(key());
    await f.writeLog(key(), 'the live log\n');
    await writeFile(`${f.dir}/secret.txt`, SECRET_TEXT);
  });
  afterEach(async () => {
    await f.close();
  });

  const get = (path: string, token?: string) =>
    rawGet(f.url, path, token === undefined ? {} : { authorization: `Bearer ${token}` });

  function expectNoLog(res: { body: Buffer }) {
    expect(res.body.toString()).not.toContain('the live log');
    expect(res.body.toString()).not.toContain(SECRET_TEXT);
  }

  it('a request without a token, with 401 and WWW-Authenticate', async () => {
    const res = await get(agentLogPath(rel));
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expectNoLog(res);
  });

  it('an expired token', async () => {
    const res = await get(agentLogPath(rel), await f.token(rel, { expiresInSeconds: -60 }));
    expect(res.status).toBe(401);
    expectNoLog(res);
  });

  it('a token for another audience', async () => {
    const res = await get(agentLogPath(rel), await f.token(rel, { audience: 'someone-else' }));
    expect(res.status).toBe(401);
    expectNoLog(res);
  });

  it('an unsigned token (alg none)', async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const forged = `${b64({ alg: 'none', typ: 'tasklog-agent+jwt' })}.${b64({
      path: rel,
      aud: 'tasklog-agent',
      iat: now,
      nbf: now,
      exp: now + 30,
    })}.`;
    const res = await get(agentLogPath(rel), forged);
    expect(res.status).toBe(401);
    expectNoLog(res);
  });

  it('a token for another attempt, with 403', async () => {
    const other = f.pathTemplate.render(key({ tryNumber: 2 }));
    const res = await get(agentLogPath(rel), await f.token(other));
    expect(res.status).toBe(403);
    expectNoLog(res);
  });

  it.each([
    ['a ".." segment', (r: string) => `/log/${r.split('/')[0]}/../../secret.txt`],
    [
      'an encoded "%2e%2e" segment',
      (r: string) => `/log/${r.split('/')[0]}/%2e%2e/%2e%2e/secret.txt`,
    ],
    ['an encoded "/" (%2F) inside a segment', () => '/log/..%2F..%2Fsecret.txt'],
    ['a backslash', () => '/log/dag_id=etl%5C..%5Csecret.txt'],
    ['a NUL', () => '/log/dag_id=etl/attempt=1.log%00'],
  ])('a path with %s, with 400, even with a token for that path', async (_name, make) => {
    const path = make(rel);
    const res = await get(path, await f.token(rel));
    expect(res.status).toBe(400);
    expectNoLog(res);
  });

  it('a path that is not an attempt log, with 404', async () => {
    const res = await get('/log/secret.txt', await f.token('secret.txt'));
    expect(res.status).toBe(404);
    expectNoLog(res);
  });

  it('a log that is a symlink out of the base folder', async () => {
    const { symlink, rm } = await import('node:fs/promises');
    const k = key({ taskId: 'linked' });
    const file = f.fileOf(k);
    await f.writeLog(k, '');
    await rm(file);
    await symlink(`${f.dir}/secret.txt`, file);
    const linkedRel = f.pathTemplate.render(k);
    const res = await get(agentLogPath(linkedRel), await f.token(linkedRel));
    expect([400, 403]).toContain(res.status);
    expectNoLog(res);
  });
});

describe('agent GET /log/* with EdDSA tokens', () => {
  it('serves the log to a token signed with the private key, verified with the public key', async () => {
    const pair = generateKeyPairSync('ed25519');
    const signing = await loadAgentTokenKeys({
      algorithm: 'EdDSA',
      privateKeyPem: pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    });
    const verifying = await loadAgentTokenKeys({
      algorithm: 'EdDSA',
      publicKeyPem: pair.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    });
    const f = await startAgentFixture({ keys: verifying, signingKeys: signing });
    try {
      const rel = f.pathTemplate.render(key());
      await f.writeLog(key(), 'signed with ed25519\n');
      const ok = await rawGet(f.url, agentLogPath(rel), {
        authorization: `Bearer ${await f.token(rel)}`,
      });
      expect(ok.status).toBe(200);
      expect(ok.body.toString()).toBe('signed with ed25519\n');
    } finally {
      await f.close();
    }
  });
});
