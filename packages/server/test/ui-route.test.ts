import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, tokensAuthenticator } from '../src/index.js';
import { closedAfterEach, startFixture } from './fixture.js';

const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; " +
  "form-action 'none'; frame-ancestors 'none'";
const API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";
const INDEX =
  '<!doctype html><title>tasklog</title><script type="module" src="/assets/app-1a2b.js"></script>';

let dir: string;
let uiDir: string;
let tokens: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tasklog-ui-'));
  // A viewer build of our own: the tests do not depend on the real one being built.
  uiDir = join(dir, 'ui');
  await mkdir(join(uiDir, 'assets'), { recursive: true });
  await writeFile(join(uiDir, 'index.html'), INDEX);
  await writeFile(join(uiDir, 'assets', 'app-1a2b.js'), 'console.log("viewer");\n');
  tokens = join(dir, 'tokens.json');
  await createToken(tokens, { name: 'reader', dags: ['*'], admin: false });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the viewer', () => {
  const start = closedAfterEach(startFixture);

  it('serves index.html for / and every page route, without a token, not cached', async () => {
    const f = await start({ deps: { uiDir, auth: tokensAuthenticator(tokens) } });
    for (const path of [
      '/',
      '/dags/etl',
      `/dags/etl/runs/${encodeURIComponent('scheduled__2024-01-01T00:00:00+00:00')}`,
      '/dags/a/runs/b/tasks/c/attempts/2?mapIndex=3',
    ]) {
      const res = await fetch(f.url + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(res.headers.get('content-security-policy')).toBe(PAGE_CSP);
      expect(await res.text()).toBe(INDEX);
    }
  });

  it('serves hashed assets as immutable for a year, with the page CSP', async () => {
    const f = await start({ deps: { uiDir } });
    const res = await fetch(`${f.url}/assets/app-1a2b.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/javascript/);
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(res.headers.get('content-security-policy')).toBe(PAGE_CSP);
    expect((await fetch(`${f.url}/assets/missing.js`)).status).toBe(404);
  });

  it('keeps the API on its own CSP and its authentication', async () => {
    const f = await start({ deps: { uiDir, auth: tokensAuthenticator(tokens) } });
    const res = await fetch(`${f.url}/api/v1/dags`);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-security-policy')).toBe(API_CSP);
  });

  it('answers 503 with JSON saying to build it when it is not built', async () => {
    const f = await start({ deps: { uiDir: join(dir, 'not-built') } });
    const res = await fetch(`${f.url}/dags/etl`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { error: { message: string } };
    expect(body.error.message).toContain('build');
  });

  it('is not served with ui = false: / is 404 JSON as before', async () => {
    const f = await start({ deps: { uiDir, ui: false } });
    for (const path of ['/', '/dags/etl', '/assets/app-1a2b.js']) {
      const res = await fetch(f.url + path);
      expect(res.status, path).toBe(404);
      expect(await res.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
    }
  });
});
