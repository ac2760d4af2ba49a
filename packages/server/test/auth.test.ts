import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createToken, jwtAuthenticator, tokensAuthenticator } from '../src/index.js';
import { type Fixture, key, logPath, startFixture } from './fixture.js';

const other = key({ dagId: 'payroll' });
const mine = key({ dagId: 'etl_daily' });
const LOG = Buffer.from('a log line\n');

/** Lines a pino logger wrote, for checking what denials log. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  return { logger, lines };
}

async function archiveBoth(f: Fixture) {
  await f.archive(mine, LOG);
  await f.archive(other, Buffer.from('salaries\n'));
  await f.catalog.upsert(mine, {
    relativePath: f.pathTemplate.render(mine),
    agentUrl: 'http://worker-1.internal:8795',
  });
}

describe('auth.mode = "tokens"', () => {
  let f: Fixture;
  let dir: string;
  let reader: string;
  let admin: string;
  const { logger, lines } = capture();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tasklog-auth-'));
    const file = join(dir, 'tokens.json');
    reader = await createToken(file, { name: 'etl-reader', dags: ['etl_*'], admin: false });
    admin = await createToken(file, { name: 'ops', dags: ['*'], admin: true });
    f = await startFixture({ logger, deps: { auth: tokensAuthenticator(file) } });
    await archiveBoth(f);
  });
  afterAll(async () => {
    await f?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const get = (path: string, token?: string, accept?: string) =>
    fetch(`${f.url}${path}`, {
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(accept ? { accept } : {}),
      },
    });

  it('refuses a request without a token with 401 and WWW-Authenticate: Bearer', async () => {
    const res = await get(logPath(mine));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer');
    expect(await res.text()).not.toContain('a log line');
  });

  it('refuses an unknown token with 401', async () => {
    expect((await get(logPath(mine), `${reader}x`)).status).toBe(401);
    expect((await get('/api/v1/attempts', 'tlk_forged')).status).toBe(401);
  });

  it('serves a granted DAG’s log', async () => {
    const res = await get(logPath(mine), reader);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(LOG.toString());
  });

  for (const [how, query, accept] of [
    ['text', '', undefined],
    ['NDJSON follow', 'follow=true', 'application/x-ndjson'],
    ['SSE follow', 'follow=true', 'text/event-stream'],
  ] as const) {
    it(`refuses another DAG's log with 403 (${how}), the same whether the attempt exists or not`, async () => {
      const existing = await get(logPath(other, query), reader, accept);
      const missing = await get(
        logPath(key({ dagId: 'payroll', runId: 'nope' }), query),
        reader,
        accept,
      );
      expect(existing.status).toBe(403);
      expect(missing.status).toBe(403);
      expect(await existing.text()).toBe(await missing.text());
    });
  }

  it('lists only granted DAGs, without agent and store URLs', async () => {
    const res = await get('/api/v1/attempts', reader);
    const { attempts } = (await res.json()) as { attempts: Record<string, unknown>[] };
    expect(attempts.map((a) => a.dagId)).toEqual(['etl_daily']);
    expect(attempts[0]).toMatchObject({ agentUrl: null, storeUrl: null });
    expect((await get('/api/v1/attempts?dagId=payroll', reader)).status).toBe(403);
  });

  it('shows agent and store URLs to the admin grant', async () => {
    const res = await get('/api/v1/attempts?limit=10', admin);
    const { attempts } = (await res.json()) as { attempts: Record<string, unknown>[] };
    expect(attempts.map((a) => a.dagId).sort()).toEqual(['etl_daily', 'payroll']);
    const etl = attempts.find((a) => a.dagId === 'etl_daily');
    expect(etl).toMatchObject({ agentUrl: 'http://worker-1.internal:8795', storeUrl: f.store.url });
  });

  it('says only ok or not on /health to callers without the admin grant', async () => {
    expect(await (await get('/health')).json()).toEqual({ status: 'ok' });
    expect(await (await get('/health', reader)).json()).toEqual({ status: 'ok' });
    const full = (await (await get('/health', admin)).json()) as { store: { url: string } };
    expect(full.store.url).toBe(f.store.url);
  });

  it('logs every denial with who and what, never the token', async () => {
    await get(logPath(other), reader);
    const denial = lines.find((l) => l.msg === 'access denied' && l.dagId === 'payroll');
    expect(denial).toMatchObject({ principal: 'etl-reader' });
    expect(JSON.stringify(lines)).not.toContain(reader);
    expect(JSON.stringify(lines)).not.toContain(admin);
  });
});

describe('auth.mode = "jwt" with an OIDC provider’s JWKS', () => {
  let f: Fixture;
  let jwks: { keys: JWK[] };
  let server: http.Server;
  let jwksUrl: string;
  let fetches = 0;

  async function newKey(kid: string) {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    return {
      kid,
      privateKey,
      jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' },
    };
  }
  /** A token of `k` as the identity provider issues it, but for what a test changes. */
  const sign = (
    k: Awaited<ReturnType<typeof newKey>>,
    claims: Record<string, unknown> = {},
    exp: string | number = '5m',
    { issuer = 'https://idp.example', audience = 'tasklog' } = {},
  ) =>
    new SignJWT({ tasklog_dags: ['etl_*'], ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: k.kid })
      .setSubject('alice@example.com')
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(k.privateKey);

  let first: Awaited<ReturnType<typeof newKey>>;
  beforeAll(async () => {
    first = await newKey('k1');
    jwks = { keys: [first.jwk] };
    server = http.createServer((_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(jwks));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    const auth = await jwtAuthenticator({
      jwksUrl,
      issuer: 'https://idp.example',
      audience: 'tasklog',
      algorithms: ['ES256'],
      clockToleranceSeconds: 5,
      nameClaim: 'sub',
      dagsClaim: 'tasklog_dags',
      adminClaim: 'tasklog_admin',
    });
    f = await startFixture({ deps: { auth } });
    await archiveBoth(f);
  });
  afterAll(async () => {
    await f?.close();
    await new Promise((r) => server.close(r));
  });
  afterEach(() => {
    jwks = { keys: [first.jwk] };
  });

  const get = (path: string, token: string) =>
    fetch(`${f.url}${path}`, { headers: { authorization: `Bearer ${token}` } });

  it('serves a granted DAG to a valid token and refuses another DAG with 403', async () => {
    const token = await sign(first);
    expect((await get(logPath(mine), token)).status).toBe(200);
    expect((await get(logPath(other), token)).status).toBe(403);
  });

  it('refuses an expired token, another audience, another issuer and alg none with 401', async () => {
    const expired = await sign(first, {}, Math.floor(Date.now() / 1000) - 60);
    const all = { tasklog_dags: ['*'] };
    const audience = await sign(first, all, '5m', { audience: 'another-app' });
    const issuer = await sign(first, all, '5m', { issuer: 'https://evil.example' });
    const header = Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url');
    const body = Buffer.from(
      JSON.stringify({ sub: 'x', tasklog_dags: ['*'], iss: 'https://idp.example', aud: 'tasklog' }),
    ).toString('base64url');
    for (const token of [expired, audience, issuer, `${header}.${body}.`]) {
      expect((await get(logPath(mine), token)).status).toBe(401);
    }
  });

  it('picks up a rotated key without a restart, and refuses the old key once it is gone', async () => {
    const before = await sign(first);
    expect((await get(logPath(mine), before)).status).toBe(200);
    const second = await newKey('k2');
    jwks = { keys: [second.jwk] }; // the provider rotated: k1 is withdrawn
    const fetchesBefore = fetches;
    await new Promise((r) => setTimeout(r, 1100)); // past the refetch cool-down
    expect((await get(logPath(mine), await sign(second))).status).toBe(200);
    expect(fetches).toBeGreaterThan(fetchesBefore);
    expect((await get(logPath(mine), await sign(first))).status).toBe(401);
  });
});
