import { Buffer } from 'node:buffer';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, tokensAuthenticator } from '../src/index.js';
import { type Fixture, key, logPath, startFixture } from './fixture.js';

interface Match {
  offset: number;
  lineOffset: number;
  length: number;
  line: string;
}
interface SearchBody {
  matches: Match[];
  scannedFrom: number;
  scannedTo: number;
  size: number;
  done: boolean;
  stopped: null | 'limit' | 'time';
}

// Multi-byte characters of every length before the matches, CRLF, and no trailing newline.
const LINES = [
  '[10:00:00] starting — héllo wörld 日本語 😀',
  '[10:00:01] ERROR failed: code 17 ✗',
  '[10:00:02] progress 50 % — ok\r',
  '[10:00:03] 😀😀 error again: code 42 and Error 43',
  'ÅNGSTRÖM wörld WÖRLD',
  'last line without newline error',
];
const LOG = Buffer.from(LINES.join('\n'), 'utf8');

/** Every byte offset of `needle` in LOG. */
function offsetsOf(needle: string, from = 0): number[] {
  const found: number[] = [];
  const bytes = Buffer.from(needle);
  for (let at = LOG.indexOf(bytes, from); at >= 0; at = LOG.indexOf(bytes, at + bytes.length)) {
    found.push(at);
  }
  return found;
}

let f: Fixture;
const archived = key({ taskId: 'searched' });
const search = (query: string, k = archived) =>
  logPath(k).replace(/\/log(\?|$)/, '/log/search$1') +
  (logPath(k).includes('?') ? '&' : '?') +
  query;

async function get(query: string, k = archived): Promise<{ status: number; body: SearchBody }> {
  const res = await fetch(f.url + search(query, k));
  return { status: res.status, body: (await res.json()) as SearchBody };
}

beforeAll(async () => {
  f = await startFixture();
  await f.archive(archived, LOG);
});
afterAll(async () => {
  await f?.close();
});

describe('GET …/log/search, plain text', () => {
  it('finds every match, ignoring case by default, at exact UTF-8 byte offsets', async () => {
    const { status, body } = await get('q=error');
    expect(status).toBe(200);
    const expected = [...offsetsOf('ERROR'), ...offsetsOf('error'), ...offsetsOf('Error')].sort(
      (a, b) => a - b,
    );
    expect(body.matches.map((m) => m.offset)).toEqual(expected);
    for (const m of body.matches) {
      expect(
        LOG.subarray(m.offset, m.offset + m.length)
          .toString()
          .toLowerCase(),
      ).toBe('error');
      expect(LOG[m.lineOffset - 1] === undefined || LOG[m.lineOffset - 1] === 10).toBe(true);
      expect(m.line).toBe(
        LINES.find((l) => LOG.indexOf(Buffer.from(l), m.lineOffset) === m.lineOffset)!.replace(
          /\r$/,
          '',
        ),
      );
    }
    expect(body).toMatchObject({
      scannedFrom: 0,
      scannedTo: LOG.length,
      size: LOG.length,
      done: true,
      stopped: null,
    });
  });

  it('with case=true matches the exact case only', async () => {
    const { body } = await get('q=error&case=true');
    expect(body.matches.map((m) => m.offset)).toEqual(offsetsOf('error'));
  });

  it('ignores the case of non-ASCII text too, with offsets in bytes', async () => {
    const { body } = await get(`q=${encodeURIComponent('wörld')}`);
    expect(body.matches.map((m) => [m.offset, m.length])).toEqual(
      [...offsetsOf('wörld'), ...offsetsOf('WÖRLD')].sort((a, b) => a - b).map((o) => [o, 6]),
    );
  });

  it('takes a line with CRLF without its CR', async () => {
    const { body } = await get(`q=${encodeURIComponent('ok')}&case=true`);
    expect(body.matches).toEqual([
      {
        offset: offsetsOf('ok')[0],
        lineOffset: LOG.indexOf('[10:00:02]'),
        length: 2,
        line: '[10:00:02] progress 50 % — ok',
      },
    ]);
  });
});

describe('GET …/log/search, regular expressions', () => {
  it('matches JavaScript syntax, at exact byte offsets after multi-byte text', async () => {
    const { body } = await get(`q=${encodeURIComponent('code \\d+')}&regex=true`);
    expect(body.matches.map((m) => [m.offset, m.length])).toEqual([
      [offsetsOf('code 17')[0], 7],
      [offsetsOf('code 42')[0], 7],
    ]);
  });

  it('ignores case unless case=true', async () => {
    const insensitive = await get(`q=${encodeURIComponent('^ångström')}&regex=true`);
    expect(insensitive.body.matches.map((m) => m.offset)).toEqual(offsetsOf('ÅNGSTRÖM'));
    const sensitive = await get(`q=${encodeURIComponent('^ångström')}&regex=true&case=true`);
    expect(sensitive.body.matches).toEqual([]);
  });

  it('refuses an invalid pattern with 400 INVALID_INPUT', async () => {
    const res = await fetch(f.url + search(`q=${encodeURIComponent('(unclosed')}&regex=true`));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'INVALID_INPUT' } });
  });

  it('cuts a runaway pattern at the time limit while the server keeps answering', async () => {
    const g = await startFixture({ deps: { searchTimeLimitMs: 2000 } });
    try {
      const k = key({ taskId: 'runaway' });
      await g.archive(k, Buffer.from(`found first\n${'a'.repeat(30)}b\nnever reached\n`));
      const searching = fetch(
        g.url + search(`q=${encodeURIComponent('(a+)+$|found')}&regex=true`, k),
      );
      // Asked while the worker is stuck in the pattern.
      await new Promise((resolve) => setTimeout(resolve, 100));
      const health = await fetch(`${g.url}/health`);
      expect(health.status).toBe(200);
      const res = await searching;
      expect(res.status).toBe(200);
      // What was found before the runaway line comes back; the search resumes at that line.
      expect(await res.json()).toMatchObject({
        matches: [{ offset: 0, length: 5, line: 'found first' }],
        done: false,
        stopped: 'time',
        scannedFrom: 0,
        scannedTo: 12,
      });
    } finally {
      await g.close();
    }
  });
});

describe('GET …/log/search, worker threads', () => {
  it('runs at most maxWorkerSearches regular-expression searches at once; plain text is not held up', async () => {
    const g = await startFixture({ deps: { searchTimeLimitMs: 1500, maxWorkerSearches: 1 } });
    try {
      const k = key({ taskId: 'busy' });
      await g.archive(k, Buffer.from(`${'a'.repeat(30)}b\nneedle\n`));
      const runaway = fetch(g.url + search(`q=${encodeURIComponent('(a+)+$')}&regex=true`, k));
      // Asked while the only worker is stuck in the pattern.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const refused = await fetch(g.url + search('q=needle&regex=true', k));
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ error: { code: 'BACKEND_UNAVAILABLE' } });
      const plain = await fetch(g.url + search('q=needle&case=true', k));
      expect(plain.status).toBe(200);
      expect(((await plain.json()) as { matches: unknown[] }).matches).toHaveLength(1);
      expect((await runaway).status).toBe(200);
      // Its place is free again.
      const after = await fetch(g.url + search('q=needle&regex=true', k));
      expect(after.status).toBe(200);
    } finally {
      await g.close();
    }
  });
});

describe('GET …/log/search, paging', () => {
  it('stops at limit at a line boundary, and resuming at scannedTo gives exactly the rest', async () => {
    const all = (await get('q=o&limit=1000')).body.matches;
    expect(all.length).toBeGreaterThan(4);
    const first = (await get('q=o&limit=3')).body;
    expect(first).toMatchObject({ done: false, stopped: 'limit' });
    expect(first.matches.length).toBeLessThanOrEqual(3);
    expect(LOG[first.scannedTo - 1]).toBe(10);
    const rest: Match[] = [];
    let from = first.scannedTo;
    for (;;) {
      const page = (await get(`q=o&limit=3&offset=${from}`)).body;
      expect(page.scannedFrom).toBe(from);
      rest.push(...page.matches);
      if (page.done) break;
      from = page.scannedTo;
    }
    expect([...first.matches, ...rest]).toEqual(all);
  });

  it('refuses an empty, too long or missing q, and a bad limit, with 400', async () => {
    for (const query of [
      'q=',
      'limit=5',
      `q=${'x'.repeat(1001)}`,
      'q=a&limit=0',
      'q=a&limit=1001',
      'q=a&regex=maybe',
    ]) {
      expect((await get(query)).status, query).toBe(400);
    }
  });

  it('answers 416 for an offset past the end and 404 for an unknown attempt', async () => {
    expect((await get(`q=a&offset=${LOG.length + 1}`)).status).toBe(416);
    expect((await get('q=a', key({ taskId: 'never' }))).status).toBe(404);
  });
});

describe('GET …/log/search on large and running logs', () => {
  it('finds a match near the end of a 5 MB log with a 3 MB line, streaming', async () => {
    const k = key({ taskId: 'large' });
    const line = Buffer.alloc(3 * 1024 * 1024, 'x');
    line.write('NEEDLE', line.length - 100);
    const head = Buffer.from(`${'filler line of a big log\n'.repeat(80_000)}`);
    const bytes = Buffer.concat([head, line, Buffer.from('\ntail NEEDLE\n')]);
    await f.archive(k, bytes);
    const { body } = await get('q=needle&limit=10', k);
    expect(body.matches.map((m) => [m.offset, m.lineOffset])).toEqual([
      [head.length + line.length - 100, head.length],
      [bytes.length - 7, bytes.length - 12],
    ]);
    // A window of the long line, not the whole 3 MB line, comes back.
    expect(body.matches[0]!.line.length).toBeLessThanOrEqual(500);
    expect(body).toMatchObject({ done: true, size: bytes.length });
  });

  it('searches what is stored of a running attempt', async () => {
    const k = key({ taskId: 'running' });
    await f.writeRunning(k, Buffer.from('first\nsecond match\n'));
    const { body } = await get('q=match', k);
    expect(body).toMatchObject({
      matches: [{ offset: 13, lineOffset: 6, line: 'second match' }],
      done: true,
      size: 19,
    });
  });
});

describe('GET …/log/search with authentication', () => {
  let g: Fixture;
  let dir: string;
  let reader: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tasklog-search-auth-'));
    const file = join(dir, 'tokens.json');
    reader = await createToken(file, { name: 'etl-reader', dags: ['etl_*'], admin: false });
    g = await startFixture({ deps: { auth: tokensAuthenticator(file) } });
    await g.archive(key(), Buffer.from('secret salaries\n'));
  });
  afterAll(async () => {
    await g?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 403 for a DAG not granted and never searches it', async () => {
    const res = await fetch(g.url + search('q=secret', key()), {
      headers: { authorization: `Bearer ${reader}` },
    });
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain('salaries');
  });
});
