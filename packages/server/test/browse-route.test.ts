import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, tokensAuthenticator } from '../src/index.js';
import { type Fixture, key, rawGet, startFixture } from './fixture.js';

let f: Fixture;
let dir: string;
let reader: string;
let admin: string;
const run = key().runId;
const e = encodeURIComponent;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tasklog-browse-'));
  const file = join(dir, 'tokens.json');
  reader = await createToken(file, { name: 'etl-reader', dags: ['etl_*'], admin: false });
  admin = await createToken(file, { name: 'ops', dags: ['*'], admin: true });
  f = await startFixture({ deps: { auth: tokensAuthenticator(file) } });
  // Recorded oldest first, a few milliseconds apart, so the newest is the last one written.
  const tick = () => new Promise((resolve) => setTimeout(resolve, 5));
  const dags = ['payroll', 'etl_a', 'etl_b', 'etl_c', 'ETL_upper', 'etlx'];
  for (const dagId of dags) {
    await f.archive(key({ dagId }), Buffer.from(`${dagId}\n`));
    await tick();
  }
  await f.archive(key({ dagId: 'etl_a', tryNumber: 2 }), Buffer.from('again\n'));
  await tick();
  await f.writeRunning(key({ dagId: 'etl_a', taskId: 'load' }), Buffer.from('running\n'));
  await tick();
  await f.archive(key({ dagId: 'etl_a', runId: 'manual__2' }), Buffer.from('r2\n'));
});
afterAll(async () => {
  await f?.close();
  await rm(dir, { recursive: true, force: true });
});

async function get(path: string, token = reader) {
  const res = await fetch(f.url + path, { headers: { authorization: `Bearer ${token}` } });
  return { res, body: (await res.json()) as Record<string, unknown> };
}

describe('GET /api/v1/dags', () => {
  it('lists only the granted DAGs, newest first, with their counts', async () => {
    const { res, body } = await get('/api/v1/dags');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(body.next).toBeNull();
    const dags = body.dags as Array<Record<string, unknown>>;
    expect(dags.map((d) => d.dagId)).toEqual(['etl_a', 'etl_c', 'etl_b']);
    expect(dags[0]).toMatchObject({ dagId: 'etl_a', attempts: 4, running: 1 });
    expect(Date.parse(dags[0]!.lastUpdatedAt as string)).toBeGreaterThan(0);
  });

  it('pages over granted DAGs only', async () => {
    const first = await get('/api/v1/dags?limit=2');
    expect((first.body.dags as unknown[]).length).toBe(2);
    expect(first.body.next).toBe(2);
    const second = await get('/api/v1/dags?limit=2&offset=2');
    expect((second.body.dags as Array<{ dagId: string }>).map((d) => d.dagId)).toEqual(['etl_b']);
    expect(second.body.next).toBeNull();
  });

  it('filters by a case-insensitive substring', async () => {
    const { body } = await get('/api/v1/dags?q=ETL_', admin);
    expect((body.dags as Array<{ dagId: string }>).map((d) => d.dagId).sort()).toEqual([
      'ETL_upper',
      'etl_a',
      'etl_b',
      'etl_c',
    ]);
  });

  for (const query of ['limit=0', 'limit=1001', 'offset=-1', 'limit=x']) {
    it(`refuses ${query} with 400`, async () => {
      const { res, body } = await get(`/api/v1/dags?${query}`);
      expect(res.status).toBe(400);
      expect(body).toMatchObject({ error: { code: 'INVALID_INPUT' } });
    });
  }
});

describe('GET /api/v1/dags/:dagId/runs', () => {
  it("lists a granted DAG's runs newest first", async () => {
    const { res, body } = await get('/api/v1/dags/etl_a/runs');
    expect(res.status).toBe(200);
    expect(body).toEqual({
      runs: [
        expect.objectContaining({ runId: 'manual__2', attempts: 1, running: 0 }),
        expect.objectContaining({ runId: run, attempts: 3, running: 1 }),
      ],
      next: null,
    });
  });

  it('answers 403 for a DAG not granted, whether it exists or not', async () => {
    expect((await get('/api/v1/dags/payroll/runs')).res.status).toBe(403);
    expect((await get('/api/v1/dags/nope/runs')).res.status).toBe(403);
  });
});

describe('GET /api/v1/dags/:dagId/runs/:runId/tasks', () => {
  it("lists a run's task instances with their latest try", async () => {
    const { res, body } = await get(`/api/v1/dags/etl_a/runs/${e(run)}/tasks`);
    expect(res.status).toBe(200);
    expect(body).toEqual({
      tasks: [
        {
          taskId: 'load',
          mapIndex: -1,
          attempts: 1,
          latestTry: 1,
          state: 'running',
          size: null,
          lastUpdatedAt: expect.any(String),
        },
        {
          taskId: 'extract',
          mapIndex: -1,
          attempts: 2,
          latestTry: 2,
          state: 'shipped',
          size: 6,
          lastUpdatedAt: expect.any(String),
        },
      ],
      next: null,
    });
  });

  it('answers 403 for a DAG not granted and 400 for an invalid run id', async () => {
    expect((await get(`/api/v1/dags/payroll/runs/${e(run)}/tasks`)).res.status).toBe(403);
    const dotDot = await rawGet(f.url, '/api/v1/dags/etl_a/runs/%2e%2e/tasks', {
      authorization: `Bearer ${reader}`,
    });
    expect(dotDot.status).toBe(400);
  });

  it('needs a token', async () => {
    const res = await fetch(`${f.url}/api/v1/dags`);
    expect(res.status).toBe(401);
  });
});
