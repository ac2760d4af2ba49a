import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { createToken, OPENAPI_PATH, openApiDocument, tokensAuthenticator } from '@tasklog/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedAfterEach, key, logPath, startFixture } from './fixture.js';
import { type Exchange, ResponseChecker } from './openapi-check.js';

type Json = Record<string, unknown>;
const doc = openApiDocument as Json & { paths: Record<string, Record<string, unknown>> };

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  name: string;
  rawPath?: string;
}

/** Express's path syntax in OpenAPI's: `:name` and `*name` become `{name}`. */
const templateOf = (path: string) => path.replace(/[:*](\w+)/g, '{$1}');

/** `GET /path` for every route the app registers, mounted routers and static folders included. */
function registeredRoutes(stack: Layer[], prefix = ''): string[] {
  return stack.flatMap((layer) => {
    if (layer.route) {
      const paths = [layer.route.path].flat();
      return Object.keys(layer.route.methods).flatMap((m) =>
        paths.map((p) => `${m.toUpperCase()} ${templateOf(prefix + p)}`),
      );
    }
    const mount = layer.rawPath === '/' ? '' : (layer.rawPath ?? '');
    if (layer.handle?.stack) return registeredRoutes(layer.handle.stack, prefix + mount);
    // express.static serves every file below its mount.
    if (layer.name === 'serveStatic') return [`GET ${prefix}${mount}/{file}`];
    return [];
  });
}

/** `METHOD /path` for every operation of the document. */
function documentedOperations(): string[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((k) => !k.startsWith('x-') && k !== 'parameters')
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
}

describe('the OpenAPI document', () => {
  const start = closedAfterEach(startFixture);
  let dir: string;
  let tokens: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tasklog-openapi-'));
    tokens = join(dir, 'tokens.json');
    await createToken(tokens, { name: 'reader', dags: ['*'], admin: false });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is valid OpenAPI 3.1 by the specification schema', async () => {
    const result = await new Validator().validate(openApiDocument);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(doc.openapi).toMatch(/^3\.1\./);
  });

  it('has schemas that compile under JSON Schema 2020-12 in strict mode', () => {
    expect(() => new ResponseChecker(openApiDocument)).not.toThrow();
  });

  it('lists every route the proxy registers, and no route it does not', async () => {
    const f = await start();
    const router = (f.app as unknown as { router: { stack: Layer[] } }).router;
    const registered = registeredRoutes(router.stack).sort();
    const documented = documentedOperations();
    expect(documented.filter((op) => !op.startsWith('HEAD ')).sort()).toEqual(registered);
    // Express answers HEAD wherever it answers GET; a documented HEAD must have its GET.
    for (const op of documented.filter((o) => o.startsWith('HEAD '))) {
      expect(registered).toContain(op.replace(/^HEAD /, 'GET '));
    }
  });

  it('is served without a token, re-validated by its ETag', async () => {
    const f = await start({ deps: { auth: tokensAuthenticator(tokens) } });
    const res = await fetch(f.url + OPENAPI_PATH);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(await res.json()).toEqual(openApiDocument);
    const etag = res.headers.get('etag')!;
    const again = await fetch(f.url + OPENAPI_PATH, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });
});

describe('the response checker', () => {
  const checker = new ResponseChecker(openApiDocument);
  const log = logPath(key()).split('?')[0]!;
  type Over = Omit<Partial<Exchange>, 'body'> & { body?: string };
  const exchange = (over: Over): Exchange => ({
    method: 'GET',
    path: '/api/v1/attempts',
    status: 200,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
    tail: Buffer.alloc(0),
    truncated: false,
    finished: true,
    ...over,
    body: Buffer.from(over.body ?? '{"attempts":[]}'),
  });
  const problems = (over: Over) => checker.check(exchange(over)).problems.join('\n');

  it('passes an answer that matches', () => {
    expect(problems({})).toBe('');
  });

  it('fails a status the path does not declare', () => {
    expect(problems({ status: 418 })).toMatch(/status 418 is not declared/);
  });

  it('fails a content type the answer does not declare', () => {
    expect(
      problems({ headers: { 'content-type': 'text/plain', 'cache-control': 'no-store' } }),
    ).toMatch(/Content-Type text\/plain is not declared/);
  });

  it('fails a JSON body its schema does not allow', () => {
    expect(problems({ body: '{"attempts":[{"dagId":"etl"}]}' })).toMatch(/must have required/);
  });

  it('fails a required header that is missing', () => {
    const body = '{"error":{"code":"UNAUTHORIZED","message":"no token"}}';
    expect(problems({ status: 401, body })).toMatch(/WWW-Authenticate is required/);
  });

  it('fails an error code its status does not have', () => {
    const body = '{"error":{"code":"NOT_FOUND","message":"no token"}}';
    const headers = { 'content-type': 'application/json', 'www-authenticate': 'Bearer' };
    expect(problems({ status: 401, body, headers })).toMatch(/allowed values/);
  });

  it('fails an NDJSON line that is not a log record', () => {
    const headers = {
      'content-type': 'application/x-ndjson',
      'cache-control': 'no-cache',
      'x-tasklog-offset': '0',
    };
    const body = '{"offset":0,"text":"ok\\n"}\n{"offset":-3,"text":"bad\\n"}\n';
    expect(problems({ path: log, headers, body })).toMatch(/NDJSON line .*-3/);
  });

  it('fails a Server-Sent Event the document does not name', () => {
    const headers = {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      'x-tasklog-offset': '0',
    };
    const body =
      'retry: 3000\n\nid: 3\nevent: log\ndata: {"offset":0,"text":"ok\\n"}\n\nid: 3\nevent: bogus\ndata: {}\n\n';
    expect(problems({ path: log, headers, body })).toMatch(/SSE event "bogus"/);
  });

  it('fails a path the document does not list, unless it is the 404 every such path gets', () => {
    expect(problems({ path: '/api/v2/attempts' })).toMatch(/is not in the document/);
    const body = '{"error":{"code":"NOT_FOUND","message":"no route"}}';
    expect(problems({ path: '/api/v2/attempts', status: 404, body })).toBe('');
  });
});

describe('the server tests', () => {
  it('build every proxy app through createCheckedApp, so every answer is checked', async () => {
    const here = new URL('.', import.meta.url);
    const direct = new RegExp(['\\bcreate', 'App\\('].join(''));
    const offenders: string[] = [];
    for (const name of await readdir(here)) {
      if (!name.endsWith('.ts') || name === 'openapi-recorder.ts') continue;
      if (direct.test(await readFile(new URL(name, here), 'utf8'))) offenders.push(name);
    }
    expect(offenders).toEqual([]);
  });
});
