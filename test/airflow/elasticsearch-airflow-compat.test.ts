import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AttemptKey, attemptKey } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElasticsearchStore } from '../../packages/core/src/stores/elasticsearch/store.js';
import {
  type ElasticsearchEmulator,
  startElasticsearchEmulator,
} from '../emulators/elasticsearch/index.js';
import { runCli } from '../support/cli.js';
import { sha256 } from '../support/hash.js';
import { run } from '../support/outside-clients.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { compatLog, compatLogPieces } from './compat-log.js';
import { type AirflowEsView, readLikeAirflow } from './elasticsearch-airflow-read.js';

/**
 * tasklog's Elasticsearch documents as Airflow's Elasticsearch task handler shows them (its
 * exact read, replayed in elasticsearch-airflow-read.ts, and run by Debian's Python client), and
 * documents Airflow's own shippers index read back by tasklog exactly as Airflow joins them.
 *
 * What Airflow shows of tasklog's documents differs from the log's bytes only where a line
 * cannot be one document or one shown text (docs/AIRFLOW.md lists it): CRLF shows as LF, bytes
 * that are not UTF-8 as U+FFFD, a log's last newline is not shown ("\n".join), a running
 * attempt's line cut by a flush and a line over `max_line_bytes` show as several lines, and
 * Airflow 3 shows an Airflow 3 JSON line as its event, the end mark as a last row, and a
 * source-details group before every 1000 rows.
 */

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = '/usr/bin/python3';
const hasPythonClient =
  spawnSync(PYTHON, ['-c', 'import elasticsearch'], { stdio: 'ignore' }).status === 0;
const RUN_ID = 'manual__2024-05-01T10:00:00.123456+00:00';

const LOG = compatLog();
/** The compatibility log as Airflow should show it: CRLF as LF, invalid bytes as U+FFFD. */
const SHOWN = LOG.toString('utf8').replace(/\r\n/g, '\n');
const JSON_LINE = '{"event": "a line that looks like JSON", "level": "info"}';

/**
 * What Airflow shows of a running attempt flushed after each piece: the log's text with a line
 * break where a flush cut a line, before the character the cut fell into (that character is
 * shown whole, in the document where it ends).
 */
function shownWithFlushBreaks(log: Buffer, pieces: Buffer[]): string {
  const segments: Buffer[] = [];
  let start = 0;
  let at = 0;
  for (const piece of pieces.slice(0, -1)) {
    at += piece.length;
    if (log[at - 1] === 0x0a) continue;
    let cut = at;
    while (cut > start && (log[cut]! & 0xc0) === 0x80) cut--;
    segments.push(log.subarray(start, cut));
    start = cut;
  }
  segments.push(log.subarray(start));
  return segments.map((s) => s.toString('utf8').replace(/\r\n/g, '\n')).join('\n');
}

let emulator: ElasticsearchEmulator;
let home: string;
const stores: ElasticsearchStore[] = [];

beforeAll(async () => {
  emulator = await startElasticsearchEmulator({ refreshIntervalMs: 20 });
  home = await makeTempDir('es-airflow');
});
afterAll(async () => {
  for (const s of stores) await s.close();
  await emulator?.close();
  await removeTempDir(home);
});

function openStore(
  index: string,
  overrides: Parameters<typeof ElasticsearchStore.fromUrl>[2] = {},
) {
  const store = ElasticsearchStore.fromUrl(
    `elasticsearch+${emulator.url}/${index}`,
    {},
    { retryBaseDelayMs: 2, hostName: 'worker-1', ...overrides },
  );
  stores.push(store);
  return store;
}

/** The attempt's documents in the index, in offset order (offsets here are byte counts). */
function documents(store: ElasticsearchStore, key: AttemptKey): Record<string, unknown>[] {
  return emulator
    .documents(store.index)
    .map((d) => d.source)
    .filter((s) => s.log_id === store.logId(key) && !s.start)
    .sort((a, b) => Number(a.offset) - Number(b.offset));
}

/** Airflow's UI over the attempt, with Debian's Python client when `python` is set. */
async function airflowView(
  logId: string,
  version: '2.10' | '3.x',
  options: { hostField?: string; python?: boolean } = {},
): Promise<AirflowEsView> {
  const view = await readLikeAirflow({
    url: emulator.url,
    logId,
    version,
    ...(options.hostField ? { hostField: options.hostField } : {}),
  });
  if (!options.python) return view;
  const args = JSON.stringify({
    url: emulator.url,
    log_id: logId,
    version,
    ...(options.hostField ? { host_field: options.hostField } : {}),
  });
  const res = await run(PYTHON, [path.join(HERE, 'elasticsearch-airflow-read.py'), args], {
    PATH: '/usr/bin:/bin',
  });
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  const py = JSON.parse(res.stdout.toString('utf8')) as {
    client: string;
    pages: unknown[];
    offsets: string[];
    end_of_log: boolean;
  };
  // Debian 12's python3-elasticsearch is 7.17 (product check on `GET /`, plain JSON media
  // types); a later Debian's 8.x sends `compatible-with=8`, which the emulator takes as ES 9 does.
  expect(py.client).toMatch(/^[78]\./);
  // The outside client sees exactly what the replay sees.
  expect(py.offsets).toEqual(view.offsets);
  expect(py.end_of_log).toBe(view.endOfLog);
  if (version === '2.10') expect(py.pages).toEqual(view.pages2);
  else expect(py.pages.flat()).toEqual(view.rows3);
  return view;
}

describe('tasklog’s documents as Airflow’s Elasticsearch handler shows them', () => {
  // Airflow reads `_all` indices: each version's attempts have a dag of their own.
  const cases = [
    { version: '2.10', messageField: 'message', index: 'tasklog-af2', dagId: 'compat2' },
    { version: '3.x', messageField: 'event', index: 'tasklog-af3', dagId: 'compat3' },
  ] as const;

  for (const { version, messageField, index, dagId } of cases) {
    describe(`Airflow ${version} (message_field = ${messageField})`, () => {
      let store: ElasticsearchStore;
      beforeAll(() => {
        store = openStore(index, { messageField });
      });
      const key = (taskId: string) =>
        attemptKey({ dagId, runId: RUN_ID, taskId, mapIndex: 3, tryNumber: 1 });

      /** The rows Airflow 3 shows after its source-details header. */
      const logRows = (view: AirflowEsView) =>
        view.rows3.filter((r) => r.event !== '::endgroup::' && !('sources' in r));

      it('shows a finished attempt as its lines, one document each, up to the end mark', async () => {
        const k = key('finished');
        const writer = await store.openWriter(k);
        await writer.append(LOG);
        await writer.finish({ size: LOG.length, sha256: sha256(LOG) });

        const docs = documents(store, k);
        const lines = SHOWN.split('\n');
        // One document per line (the 300 KB line too), then the end mark.
        expect(docs.length).toBe(lines.length + 1);
        const view = await airflowView(store.logId(k), version);
        expect(view.endOfLog).toBe(true);
        if (version === '2.10') {
          expect(docs.map((d) => d.message)).toEqual([...lines, 'end_of_log']);
          expect(view.pages2).toEqual([[['worker-1', SHOWN]]]);
          expect(view.text).toBe(SHOWN);
        } else {
          // Airflow 3 shows the JSON line as its event (with its level), and the end mark.
          const events = lines.map((l) => (l === JSON_LINE ? 'a line that looks like JSON' : l));
          expect(logRows(view).map((r) => r.event)).toEqual([...events, 'end_of_log']);
          expect(logRows(view).find((r) => r.level === 'info')?.event).toBe(
            'a line that looks like JSON',
          );
          expect(view.rows3[0]).toEqual({
            event: '::group::Log message source details',
            sources: ['worker-1'],
          });
        }
        expect((await readAll(store, k)).equals(LOG)).toBe(true);
      });

      it('shows a running attempt’s flushed documents, a line cut by a flush as two', async () => {
        const k = key('running');
        const pieces = compatLogPieces(LOG);
        const writer = await store.openWriter(k);
        for (const piece of pieces) {
          await writer.append(piece);
          await writer.flush();
        }
        const expected = shownWithFlushBreaks(LOG, pieces);
        const view = await airflowView(store.logId(k), version, { python: hasPythonClient });
        expect(view.endOfLog).toBe(false);
        if (version === '2.10') expect(view.text).toBe(expected);
        else {
          const events = expected
            .split('\n')
            .map((l) => (l === JSON_LINE ? 'a line that looks like JSON' : l));
          expect(logRows(view).map((r) => r.event)).toEqual(events);
        }
        expect((await readAll(store, k)).equals(LOG)).toBe(true);

        // Finished: the same lines, and Airflow stops at the end mark.
        await writer.finish({ size: LOG.length, sha256: sha256(LOG) });
        const done = await airflowView(store.logId(k), version);
        expect(done.endOfLog).toBe(true);
        if (version === '2.10') expect(done.text).toBe(expected);
        else expect(logRows(done).at(-1)).toEqual({ event: 'end_of_log' });
      });

      it.skipIf(!hasPythonClient)(
        'is read the same by Airflow’s query through Debian’s python3-elasticsearch (skipped when `/usr/bin/python3 -c "import elasticsearch"` fails)',
        async () => {
          const k = key('finished');
          const view = await airflowView(store.logId(k), version, { python: true });
          expect(view.endOfLog).toBe(true);
        },
      );
    });
  }

  it('splits only a line over max_line_bytes, which Airflow then shows as several lines', async () => {
    const store = openStore('tasklog-af2-small', { maxLineBytes: 100 * 1024 });
    const k = attemptKey({ dagId: 'compat-long', runId: RUN_ID, taskId: 'long', tryNumber: 1 });
    await store.openWriter(k).then(async (w) => {
      await w.append(LOG);
      await w.finish({ size: LOG.length, sha256: sha256(LOG) });
    });
    const long = SHOWN.split('\n').find((l) => l.startsWith('long line'))!;
    const pieces = documents(store, k).filter((d) => String(d.message).includes('é€𝄞日本 '));
    // Cut at most 100 KiB apart, never inside a character.
    expect(pieces.length).toBe(4);
    expect(pieces.every((d) => Number(d.length) <= 100 * 1024)).toBe(true);
    expect(pieces.map((d) => d.message).join('')).toBe(long);
    const view = await airflowView(store.logId(k), '2.10');
    expect(view.text).toBe(SHOWN.replace(long, pieces.map((d) => d.message).join('\n')));
    expect((await readAll(store, k)).equals(LOG)).toBe(true);
  });
});

/**
 * Golden documents, shaped from Airflow's source as its shippers leave them (no byte lengths):
 * - elasticsearch-airflow2-filebeat.ndjson: Airflow 2.10 with `write_stdout` + `json_format`
 *   (`ElasticsearchJSONFormatter`: `asctime`, `filename`, `lineno`, `levelname`, `message`, the
 *   `dag_id`/`task_id`/`execution_date`/`try_number`/`log_id` extras; `emit()` sets `offset` to
 *   `int(time.time() * 10**9)`; `close()` emits the end mark), indexed by Filebeat's container
 *   input with `json.keys_under_root` (`host.name`, `agent`, `@timestamp`), in shuffled order;
 *   two lines share one offset, Filebeat sent one event twice, and another attempt's log_id
 *   contains this one.
 * - elasticsearch-airflow3-write-to-es.ndjson: Airflow 3 `write_to_es`
 *   (`ElasticsearchRemoteLogIO._parse_raw_log`: each JSON line of the task log plus `log_id`
 *   and `offset` 1, 2, ...), uploaded when the task deferred and again, whole, when it ended.
 *   No end mark: Airflow 3 writes none.
 * - elasticsearch-ns-offsets.ndjson: `offset`s from a nanosecond clock (`time.time_ns()`), past
 *   2^53 and 1 ns apart, which a double cannot tell apart.
 * Each `.txt` holds what tasklog reads: Airflow's "\n".join of the messages in offset order up
 * to the end mark, each repeated document once.
 */
describe('documents Airflow’s shippers wrote, read by tasklog as Airflow joins them', () => {
  const golden = [
    {
      name: 'elasticsearch-airflow2-filebeat',
      index: 'filebeat-airflow',
      key: attemptKey({
        dagId: 'example_bash_operator',
        runId: 'scheduled__2024-01-01T00:00:00+00:00',
        taskId: 'runme_0',
        tryNumber: 1,
      }),
      version: '2.10' as const,
      hostField: 'host.name',
      complete: true,
    },
    {
      name: 'elasticsearch-airflow3-write-to-es',
      index: 'airflow-logs',
      key: attemptKey({
        dagId: 'etl',
        runId: 'manual__2025-08-12T15:05:57.691303+00:00',
        taskId: 'load',
        mapIndex: 2,
        tryNumber: 1,
      }),
      version: '3.x' as const,
      complete: false,
    },
    {
      name: 'elasticsearch-ns-offsets',
      index: 'fluentd-airflow',
      key: attemptKey({
        dagId: 'ns-clock',
        runId: 'scheduled__2024-06-01T00:00:00+00:00',
        taskId: 'emit',
        tryNumber: 3,
      }),
      version: '2.10' as const,
      complete: true,
    },
  ];
  const expected = new Map<string, Buffer>();

  beforeAll(async () => {
    for (const g of golden) {
      const ndjson = await readFile(path.join(HERE, `${g.name}.ndjson`), 'utf8');
      // Raw bytes to the emulator: the offsets' digits must arrive as they are in the file.
      const body = ndjson
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => `{"index":{}}\n${l}\n`)
        .join('');
      const res = await fetch(`${emulator.url}/${g.index}/_bulk?refresh=true`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson' },
        body,
      });
      expect(((await res.json()) as { errors: boolean }).errors).toBe(false);
      expected.set(g.name, await readFile(path.join(HERE, `${g.name}.txt`)));
    }
  });

  for (const g of golden) {
    describe(g.name, () => {
      it('reads, stats and lists the attempt as Airflow joins it', async () => {
        const store = openStore(g.index);
        const want = expected.get(g.name)!;
        expect((await readAll(store, g.key)).equals(want)).toBe(true);
        expect(await store.stat(g.key)).toMatchObject({ size: want.length, complete: g.complete });
        const from = Math.floor(want.length / 2);
        const tail: Buffer[] = [];
        for await (const c of store.read(g.key, { offset: from })) tail.push(Buffer.from(c.bytes));
        expect(Buffer.concat(tail).equals(want.subarray(from))).toBe(true);
        const listed: AttemptKey[] = [];
        for await (const k of store.list({
          dagId: g.key.dagId,
          runId: g.key.runId,
          taskId: g.key.taskId,
        })) {
          listed.push(k);
        }
        expect(listed).toEqual([g.key]);
      });

      it('fetches it with `tasklog fetch` (the latest try found through the store)', async () => {
        const env = {
          PATH: process.env.PATH,
          TASKLOG_HOME: path.join(home, g.name),
          TASKLOG__STORE__URL: `elasticsearch+${emulator.url}/${g.index}`,
        };
        const args = ['fetch', g.key.dagId, g.key.runId, g.key.taskId];
        if (g.key.mapIndex >= 0) args.push('--map-index', String(g.key.mapIndex));
        const res = await runCli(args, env);
        expect(res.stderr).toBe('');
        expect(res.code).toBe(0);
        expect(res.stdout.equals(expected.get(g.name)!)).toBe(true);
      });
    });
  }

  it('shows what Airflow 2.10 shows, but each repeated document once and no other attempt', async () => {
    const want = expected.get('elasticsearch-airflow2-filebeat')!.toString('utf8');
    const logId = 'example_bash_operator-runme_0-scheduled__2024-01-01T00:00:00+00:00--1-1';
    const view = await airflowView(logId, '2.10', { hostField: 'host.name' });
    expect(view.endOfLog).toBe(true);
    const repeated = 'Executing <Task(BashOperator): runme_0> on 2024-01-01 00:00:00+00:00';
    // Airflow shows Filebeat's repeated event twice, and (log_id being text) the lines of an
    // attempt whose log_id contains this one, as a host of their own.
    expect(view.pages2).toEqual([
      [
        ['worker-1', want.replace(repeated, `${repeated}\n${repeated}`)],
        ['w', 'another attempt'],
      ],
    ]);
  });

  it('shows what Airflow 3 shows of its write_to_es documents, each repeated one once', async () => {
    const want = expected.get('elasticsearch-airflow3-write-to-es')!.toString('utf8').split('\n');
    const view = await airflowView('etl-load-manual__2025-08-12T15:05:57.691303+00:00-2-1', '3.x');
    // No end mark: Airflow 3 keeps asking, then says "End of log marker not found".
    expect(view.endOfLog).toBe(false);
    const events = view.rows3.filter((r) => !('sources' in r) && r.event !== '::endgroup::');
    // Lines 1-4 were uploaded twice: Airflow shows each twice, side by side (same offset).
    expect(events.map((r) => r.event)).toEqual([
      ...want.slice(0, 4).flatMap((l) => [l, l]),
      ...want.slice(4),
    ]);
    expect(events[0]).toEqual({
      timestamp: '2025-08-12T15:05:58.101002Z',
      level: 'info',
      event: 'DAG bundles loaded: dags-folder',
      logger: 'airflow.dag_processing.bundles.manager.DagBundlesManager',
    });
  });

  it('orders nanosecond offsets exactly, as Airflow does, where doubles would tie', async () => {
    const logId = 'ns-clock-emit-scheduled__2024-06-01T00:00:00+00:00--1-3';
    const view = await airflowView(logId, '2.10', { python: hasPythonClient });
    expect(view.offsets).toEqual(['1717200000123457090']);
    expect(view.text).toBe(expected.get('elasticsearch-ns-offsets')!.toString('utf8'));
    // Without a dag_id and task_id the id splits two ways (dashes inside them): not listed.
    const store = openStore('fluentd-airflow');
    const all: AttemptKey[] = [];
    for await (const k of store.list({})) all.push(k);
    expect(all).toEqual([]);
  });

  it('pages through thousands of documents sharing offsets without losing or repeating one', async () => {
    const store = openStore('ties', { pageSize: 100 });
    const k = attemptKey({ dagId: 'ties', runId: RUN_ID, taskId: 'many', tryNumber: 1 });
    const logId = store.logId(k);
    const base = 1_755_011_166_339_518_208n;
    const lines: string[] = [];
    let body = '';
    for (let i = 0; i < 2500; i++) {
      // Runs of 1 to 250 lines on one offset (multiples of 256: the double clock's ticks).
      const offset = base + 256n * BigInt(Math.floor(Math.sqrt(i * 25)));
      lines.push(`line ${i}`);
      body += `{"index":{}}\n{"log_id":"${logId}","offset":${offset},"message":"line ${i}"}\n`;
    }
    body += `{"index":{}}\n{"log_id":"${logId}","offset":${base + 10_000_000n},"message":"end_of_log"}\n`;
    const res = await fetch(`${emulator.url}/ties/_bulk?refresh=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body,
    });
    expect(res.status).toBe(200);
    expect((await readAll(store, k)).toString('utf8')).toBe(lines.join('\n'));
  });
});
