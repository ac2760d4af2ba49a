import { Buffer } from 'node:buffer';
import type { AttemptKey } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, key, logPath, rawGet, sha256, startFixture } from './fixture.js';

// CRLF, multi-byte characters of every length and no trailing newline.
const LOG = Buffer.from(
  '[2024-05-01 10:00:00] starting\r\nprogress: 50 % — done ✓\n日本語のログ 😀\nlast line without newline',
  'utf8',
);
const SECRET = Buffer.from('SECRET bytes of another attempt\n');

interface NdjsonLine {
  offset: number;
  text?: string;
  bytes?: string;
  eof?: boolean;
  complete?: boolean;
}

function parseNdjson(body: string): NdjsonLine[] {
  return body
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as NdjsonLine);
}

function reassemble(records: NdjsonLine[], start: number): Buffer {
  let at = start;
  const parts: Buffer[] = [];
  for (const r of records) {
    expect(r.offset).toBe(at);
    if (r.eof) break;
    const p =
      r.text !== undefined ? Buffer.from(r.text, 'utf8') : Buffer.from(r.bytes ?? '', 'base64');
    parts.push(p);
    at += p.length;
  }
  return Buffer.concat(parts);
}

let f: Fixture;
const complete = key();
const etag = `"sha256:${sha256(LOG)}"`;

beforeAll(async () => {
  f = await startFixture();
  await f.archive(complete, LOG);
  await f.archive(key({ dagId: 'other', runId: 'secret' }), SECRET);
  await f.archive(key({ runId: '..x' }), SECRET);
});
afterAll(async () => {
  await f?.close();
});

describe('GET …/log as text', () => {
  it('sends the whole log byte-identical with its size, completeness and ETag', async () => {
    const res = await fetch(f.url + logPath(complete));
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(LOG)).toBe(true);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(res.headers.get('content-length')).toBe(String(LOG.length));
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('etag')).toBe(etag);
    expect(res.headers.get('x-tasklog-size')).toBe(String(LOG.length));
    expect(res.headers.get('x-tasklog-complete')).toBe('true');
    expect(res.headers.get('x-tasklog-offset')).toBe('0');
  });

  it('sends exactly the suffix from the offset parameter', async () => {
    const res = await fetch(f.url + logPath(complete, 'offset=35'));
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(LOG.subarray(35))).toBe(true);
    expect(res.headers.get('x-tasklog-offset')).toBe('35');
    expect(res.headers.get('content-length')).toBe(String(LOG.length - 35));
  });

  it('answers an offset equal to the size with an empty 200', async () => {
    const res = await fetch(f.url + logPath(complete, `offset=${LOG.length}`));
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
    expect(res.headers.get('x-tasklog-offset')).toBe(String(LOG.length));
  });

  it('answers an offset past the end with 416 and a JSON error', async () => {
    const res = await fetch(f.url + logPath(complete, `offset=${LOG.length + 1}`));
    expect(res.status).toBe(416);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('OFFSET_OUT_OF_RANGE');
    expect(typeof body.error.message).toBe('string');
  });

  it('answers HEAD with the headers and no body', async () => {
    const res = await fetch(f.url + logPath(complete), { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(LOG.length));
    expect(res.headers.get('etag')).toBe(etag);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it('answers an unknown attempt with 404 and an error body', async () => {
    const res = await fetch(f.url + logPath(key({ taskId: 'nope' })));
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { code: 'NOT_FOUND', message: expect.any(String) },
    });
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await fetch(`${f.url}/api/v1/nothing-here`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND');
  });
});

describe('HTTP ranges', () => {
  async function ranged(range: string, extra: Record<string, string> = {}) {
    const res = await fetch(f.url + logPath(complete), { headers: { range, ...extra } });
    return { res, body: Buffer.from(await res.arrayBuffer()) };
  }

  it.each([
    ['bytes=N-M with exactly those bytes', 'bytes=5-19', 5, 20],
    ['bytes=N- with the rest of the log', 'bytes=40-', 40, LOG.length],
    ['bytes=-N with the last N bytes', 'bytes=-10', LOG.length - 10, LOG.length],
    [
      'a range that runs past the end with the rest, clamped',
      `bytes=10-${LOG.length + 100}`,
      10,
      LOG.length,
    ],
  ])('answers %s (206)', async (_what, range, from, to) => {
    const { res, body } = await ranged(range);
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes ${from}-${to - 1}/${LOG.length}`);
    expect(res.headers.get('content-length')).toBe(String(to - from));
    expect(res.headers.get('x-tasklog-offset')).toBe(String(from));
    expect(body.equals(LOG.subarray(from, to))).toBe(true);
  });

  it('ignores several ranges and sends the whole log', async () => {
    const { res, body } = await ranged('bytes=0-1,5-6');
    expect(res.status).toBe(200);
    expect(body.equals(LOG)).toBe(true);
  });

  it('answers an unsatisfiable range with 416 and Content-Range bytes */size', async () => {
    const { res, body } = await ranged(`bytes=${LOG.length}-`);
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${LOG.length}`);
    expect(JSON.parse(body.toString()).error.code).toBe('OFFSET_OUT_OF_RANGE');
  });

  it('sends the whole log when If-Range names another ETag', async () => {
    const { res, body } = await ranged('bytes=0-3', { 'if-range': '"sha256:0000"' });
    expect(res.status).toBe(200);
    expect(body.equals(LOG)).toBe(true);
  });

  it('honours the range when If-Range names the current ETag', async () => {
    const { res, body } = await ranged('bytes=0-3', { 'if-range': etag });
    expect(res.status).toBe(206);
    expect(body.equals(LOG.subarray(0, 4))).toBe(true);
  });

  it('rejects a Range header together with the offset parameter', async () => {
    const res = await fetch(f.url + logPath(complete, 'offset=3'), {
      headers: { range: 'bytes=0-3' },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INVALID_INPUT');
  });
});

describe('conditional requests', () => {
  it('answers a matching If-None-Match with 304 and no body', async () => {
    const res = await fetch(f.url + logPath(complete), { headers: { 'if-none-match': etag } });
    expect(res.status).toBe(304);
    expect(res.headers.get('etag')).toBe(etag);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it('sends the log when If-None-Match names another ETag', async () => {
    const res = await fetch(f.url + logPath(complete), {
      headers: { 'if-none-match': '"sha256:abc", W/"x"' },
    });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(LOG)).toBe(true);
  });
});

describe('GET …/log as NDJSON', () => {
  it('reassembles byte-identical from records whose offsets match, via Accept', async () => {
    const res = await fetch(f.url + logPath(complete), {
      headers: { accept: 'application/x-ndjson' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const records = parseNdjson(await res.text());
    expect(reassemble(records, 0).equals(LOG)).toBe(true);
    expect(records.at(-1)).toEqual({ offset: LOG.length, eof: true, complete: true });
    expect(records[1]).toEqual({ offset: 32, text: 'progress: 50 % — done ✓\n' });
  });

  it('starts at the offset parameter with format=ndjson', async () => {
    const res = await fetch(f.url + logPath(complete, 'format=ndjson&offset=60'));
    const records = parseNdjson(await res.text());
    expect(records[0]?.offset).toBe(60);
    expect(reassemble(records, 60).equals(LOG.subarray(60))).toBe(true);
  });

  it('sends an offset inside a multi-byte character as bytes, losing nothing', async () => {
    const inside = LOG.indexOf(Buffer.from('日')) + 1;
    const res = await fetch(f.url + logPath(complete, `format=ndjson&offset=${inside}`));
    const records = parseNdjson(await res.text());
    expect(records[0]).toHaveProperty('bytes');
    expect(reassemble(records, inside).equals(LOG.subarray(inside))).toBe(true);
  });

  it('rejects an unknown format', async () => {
    const res = await fetch(f.url + logPath(complete, 'format=xml'));
    expect(res.status).toBe(400);
  });
});

describe('attempt ids', () => {
  /** Archives `text` as attempt `k` and expects the route to serve exactly that for it. */
  async function expectServedAfterArchiving(k: AttemptKey, text: string): Promise<void> {
    await f.archive(k, Buffer.from(text));
    const res = await fetch(f.url + logPath(k));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(text);
  }

  it('serves a run id containing ":" and "+" sent URL-encoded', async () => {
    const k = key({ runId: 'scheduled__2024-01-01T00:00:00+00:00' });
    await expectServedAfterArchiving(k, 'scheduled run\n');
  });

  it('serves a mapped attempt chosen with mapIndex', async () => {
    await expectServedAfterArchiving(key({ taskId: 'fan_out', mapIndex: 3 }), 'map index three\n');
    const unmapped = await fetch(f.url + logPath(key({ taskId: 'fan_out' })));
    expect(unmapped.status).toBe(404);
  });

  const base = '/api/v1/dags/other';
  const invalid: Array<[string, string]> = [
    ['".." as runId', `${base}/runs/../tasks/extract/attempts/1/log`],
    ['"%2e%2e" as runId', `${base}/runs/%2e%2e/tasks/extract/attempts/1/log`],
    ['"%2E%2E" as dagId', '/api/v1/dags/%2E%2E/runs/secret/tasks/extract/attempts/1/log'],
    ['"%2F" inside an id', `${base}/runs/x%2F..%2F..%2Fother/tasks/extract/attempts/1/log`],
    ['"%5C" inside an id', `${base}/runs/x%5C..%5Csecret/tasks/extract/attempts/1/log`],
    ['a NUL inside an id', `${base}/runs/secret%00/tasks/extract/attempts/1/log`],
    ['tryNumber 0', `${base}/runs/secret/tasks/extract/attempts/0/log`],
    ['tryNumber "01"', `${base}/runs/secret/tasks/extract/attempts/01/log`],
    ['mapIndex -2', `${base}/runs/secret/tasks/extract/attempts/1/log?mapIndex=-2`],
    ['offset -1', `${base}/runs/secret/tasks/extract/attempts/1/log?offset=-1`],
    ['offset "abc"', `${base}/runs/secret/tasks/extract/attempts/1/log?offset=abc`],
    ['offset given twice', `${base}/runs/secret/tasks/extract/attempts/1/log?offset=1&offset=2`],
    ['a malformed escape', `${base}/runs/%E0%A4%A/tasks/extract/attempts/1/log`],
  ];
  for (const [what, path] of invalid) {
    it(`rejects ${what} with 400 and never sends another log's bytes`, async () => {
      const res = await rawGet(f.url, path);
      expect(res.status).toBe(400);
      expect(res.body.includes('SECRET')).toBe(false);
      const body = JSON.parse(res.body.toString()) as { error: { code: string } };
      expect(body.error.code).toBe('INVALID_INPUT');
    });
  }
});

describe('a running attempt', () => {
  it('is served from its flushed bytes with X-Tasklog-Complete: false', async () => {
    const k = key({ taskId: 'still_running' });
    await f.writeRunning(k, Buffer.from('line one\nline two\n'));
    const res = await fetch(f.url + logPath(k));
    expect(res.status).toBe(200);
    expect(res.headers.get('x-tasklog-complete')).toBe('false');
    expect(res.headers.get('x-tasklog-size')).toBe('18');
    expect(res.headers.get('content-length')).toBeNull();
    expect(res.headers.get('etag')).toBeNull();
    expect(await res.text()).toBe('line one\nline two\n');
  });

  it('ends its NDJSON with complete: false', async () => {
    const k = key({ taskId: 'still_running_ndjson' });
    await f.writeRunning(k, Buffer.from('partial'));
    const res = await fetch(f.url + logPath(k, 'format=ndjson&offset=3'));
    expect(parseNdjson(await res.text())).toEqual([
      { offset: 3, text: 'tial' },
      { offset: 7, eof: true, complete: false },
    ]);
  });
});

describe('Range on a running attempt', () => {
  const k = key({ taskId: 'running_ranges' });
  const stored = Buffer.from('line one\nline two\nline three\n');
  beforeAll(async () => {
    await f.writeRunning(k, stored);
  });

  it('answers 206 from the stored bytes with an unknown total length', async () => {
    const res = await fetch(f.url + logPath(k), { headers: { range: 'bytes=5-12' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 5-12/*');
    expect(res.headers.get('content-length')).toBe('8');
    expect(res.headers.get('etag')).toBeNull();
    expect(res.headers.get('x-tasklog-complete')).toBe('false');
    expect(await res.text()).toBe(stored.subarray(5, 13).toString());
  });

  it('clips the end to what is stored, and a suffix range reads its last bytes', async () => {
    const open = await fetch(f.url + logPath(k), { headers: { range: 'bytes=18-999' } });
    expect(open.headers.get('content-range')).toBe(`bytes 18-${stored.length - 1}/*`);
    expect(await open.text()).toBe('line three\n');
    const suffix = await fetch(f.url + logPath(k), { headers: { range: 'bytes=-6' } });
    expect(suffix.status).toBe(206);
    expect(await suffix.text()).toBe('three\n');
  });

  it('answers 416 with the stored size for a start past it', async () => {
    const res = await fetch(f.url + logPath(k), { headers: { range: `bytes=${stored.length}-` } });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${stored.length}`);
  });
});

describe('?download=1', () => {
  it('adds Content-Disposition naming the attempt', async () => {
    const res = await fetch(f.url + logPath(complete, 'download=1'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toBe(
      `attachment; filename="${complete.dagId}__${complete.runId}__${complete.taskId}__${complete.tryNumber}.log"`,
    );
    expect(Buffer.from(await res.arrayBuffer()).equals(LOG)).toBe(true);
  });

  it('keeps a non-ASCII name exact in filename*', async () => {
    const k = key({ dagId: 'dag_日本', mapIndex: 2 });
    await f.archive(k, LOG);
    const res = await fetch(f.url + logPath(k, 'download=1'));
    const name = `dag_日本__${k.runId}__${k.taskId}__2__1.log`;
    expect(res.headers.get('content-disposition')).toBe(
      `attachment; filename="dag_____${k.runId}__${k.taskId}__2__1.log"; filename*=UTF-8''${encodeURIComponent(name)}`,
    );
  });

  it('is absent without download', async () => {
    const res = await fetch(f.url + logPath(complete));
    expect(res.headers.get('content-disposition')).toBeNull();
    await res.arrayBuffer();
  });
});
