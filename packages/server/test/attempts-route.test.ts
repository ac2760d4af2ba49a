import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, key, sha256, startFixture } from './fixture.js';

interface AttemptsBody {
  attempts: Array<Record<string, unknown>>;
}

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
  await f.archive(key({ taskId: 'a' }), Buffer.from('a\n'));
  await f.archive(key({ taskId: 'b', tryNumber: 1 }), Buffer.from('b1\n'));
  await f.archive(key({ taskId: 'b', tryNumber: 2 }), Buffer.from('b2\n'));
  await f.archive(key({ taskId: 'm', mapIndex: 0 }), Buffer.from('m0\n'));
  await f.archive(key({ taskId: 'm', mapIndex: 1 }), Buffer.from('m1\n'));
  await f.archive(key({ dagId: 'other', taskId: 'a' }), Buffer.from('other\n'));
});
afterAll(async () => {
  await f?.close();
});

async function list(query: string): Promise<{ status: number; body: AttemptsBody }> {
  const res = await fetch(`${f.url}/api/v1/attempts${query}`);
  return { status: res.status, body: (await res.json()) as AttemptsBody };
}

describe('GET /api/v1/attempts', () => {
  it('describes each attempt with its key, state, digest, store and ISO dates', async () => {
    const { status, body } = await list('?dagId=etl&taskId=a');
    expect(status).toBe(200);
    expect(body.attempts).toEqual([
      {
        dagId: 'etl',
        runId: key().runId,
        taskId: 'a',
        mapIndex: -1,
        tryNumber: 1,
        relativePath: f.pathTemplate.render(key({ taskId: 'a' })),
        state: 'shipped',
        size: 2,
        sha256: sha256(Buffer.from('a\n')),
        storeUrl: f.store.url,
        agentUrl: null,
        createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
        updatedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
        shippedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/),
        heartbeatAt: null,
        airflowState: null,
        exitCode: null,
      },
    ]);
  });

  it('filters by dagId', async () => {
    const { body } = await list('?dagId=other');
    expect(body.attempts.map((a) => a.dagId)).toEqual(['other']);
  });

  it('filters by runId sent URL-encoded', async () => {
    const { body } = await list(`?runId=${encodeURIComponent(key().runId)}&dagId=etl`);
    expect(body.attempts).toHaveLength(5);
  });

  it('filters by mapIndex', async () => {
    const { body } = await list('?taskId=m&mapIndex=1');
    expect(body.attempts.map((a) => [a.taskId, a.mapIndex])).toEqual([['m', 1]]);
  });

  it('returns at most limit attempts', async () => {
    const { body } = await list('?limit=2');
    expect(body.attempts).toHaveLength(2);
  });

  for (const query of [
    '?limit=0',
    '?limit=abc',
    '?mapIndex=-2',
    '?mapIndex=x',
    '?dagId=..',
    '?taskId=a%2Fb',
    '?dagId=a&dagId=b',
  ]) {
    it(`rejects ${query} with 400`, async () => {
      const { status, body } = await list(query);
      expect(status).toBe(400);
      expect(body).toEqual({ error: { code: 'INVALID_INPUT', message: expect.any(String) } });
    });
  }
});
