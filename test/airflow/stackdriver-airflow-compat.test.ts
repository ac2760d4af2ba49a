import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { type AttemptKey, attemptKey, openAirflowDb } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CloudLoggingStore,
  MAX_ENTRY_BYTES,
  MAX_PIECE_BYTES,
} from '../../packages/core/src/stores/cloud-logging/store.js';
import { entryBytes } from '../emulators/cloud-logging/entry-store.js';
import {
  type CloudLoggingEmulator,
  startCloudLoggingEmulator,
} from '../emulators/cloud-logging/index.js';
import { runCli } from '../support/cli.js';
import { sha256 } from '../support/hash.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { AirflowDbFixture } from './airflow-fixture.js';
import { compatLog, runningCompatAttempt } from './compat-log.js';
import {
  type AirflowVersion,
  curlCall,
  fetchCall,
  readLikeAirflow,
} from './stackdriver-airflow-reader.js';

// Both directions between tasklog's Cloud Logging store and Airflow's StackdriverTaskHandler
// (google provider), over the shared compatibility log: tasklog writes, Airflow's exact
// entries:list call (replayed over plain HTTP) reads; Airflow's entries (golden fixtures of 2.10
// and 3.x), tasklog reads.

process.env.METADATA_SERVER_DETECTION = 'none';

const versions: AirflowVersion[] = ['2.10', '3.x'];

let emu: CloudLoggingEmulator;

beforeAll(async () => {
  emu = await startCloudLoggingEmulator();
});
afterAll(async () => {
  await emu?.close();
});

/**
 * The lines Airflow should show for a log: each without its "\n" (and a CRLF's "\r"), bytes that
 * are not UTF-8 as U+FFFD; for a running attempt, not the last line while it has no "\n" yet.
 * A line longer than one entry holds shows as its 240 KiB pieces (whole characters).
 */
function shownLines(log: Buffer, running: boolean): string[] {
  const lines: string[] = [];
  let start = 0;
  for (let nl = log.indexOf(0x0a); nl >= 0; nl = log.indexOf(0x0a, start)) {
    lines.push(...pieces(log.subarray(start, log[nl - 1] === 0x0d ? nl - 1 : nl)));
    start = nl + 1;
  }
  if (!running && start < log.length) lines.push(...pieces(log.subarray(start)));
  return lines;
}

function pieces(line: Buffer): string[] {
  const out: string[] = [];
  let rest = line;
  while (rest.length > MAX_PIECE_BYTES) {
    let cut = MAX_PIECE_BYTES;
    while ((rest[cut]! & 0xc0) === 0x80) cut--;
    out.push(rest.subarray(0, cut).toString('utf8'));
    rest = rest.subarray(cut);
  }
  out.push(rest.toString('utf8'));
  return out;
}

describe("tasklog → Airflow's StackdriverTaskHandler", () => {
  const PROJECT = 'airflow-compat';
  const settings = { project: PROJECT };
  const LOGICAL = '2024-01-01T00:00:00+00:00';
  const run = `scheduled__${LOGICAL}`;
  const finished = attemptKey({
    dagId: 'compat_dag',
    runId: run,
    taskId: 'finished',
    tryNumber: 1,
  });
  const running = attemptKey({ dagId: 'compat_dag', runId: run, taskId: 'running', tryNumber: 1 });
  const ti = (key: AttemptKey) => ({
    dagId: key.dagId,
    taskId: key.taskId,
    logicalDate: LOGICAL,
    tryNumber: key.tryNumber,
  });
  /** Airflow `version`'s read of an attempt, its entries:list calls sent with fetch. */
  const airflowRead = (
    version: AirflowVersion,
    key: AttemptKey,
    options?: { jsonOnly?: boolean },
  ) => readLikeAirflow(fetchCall(emu.restUrl), settings, version, ti(key), options);
  const log = compatLog();
  let store: CloudLoggingStore;

  beforeAll(async () => {
    store = new CloudLoggingStore({
      logName: 'airflow',
      projectId: PROJECT,
      apiEndpoint: `http://${emu.url}`,
    });
    // A finished log as `tasklog ship` sends it: 1 MiB reads, no flush before finish.
    const w1 = await store.openWriter(finished);
    for (let at = 0; at < log.length; at += 1 << 20)
      await w1.append(log.subarray(at, at + (1 << 20)));
    await w1.finish({ size: log.length, sha256: sha256(log) });
    // A running one as `tasklog ship --follow` sends it: a flush after every piece.
    await runningCompatAttempt(store, running, log);
  });
  afterAll(async () => {
    await store?.close();
  });

  it.each(versions)(
    'Airflow %s sends exactly this entries:list request for a try',
    async (version) => {
      const { requests } = await airflowRead(version, finished);
      const date = version === '3.x' ? 'logical_date' : 'execution_date';
      expect(requests).toEqual([
        {
          resourceNames: ['projects/airflow-compat'],
          filter: [
            'resource.type="global"',
            'logName="projects/airflow-compat/logs/airflow"',
            'labels.task_id="finished"',
            'labels.dag_id="compat_dag"',
            `labels.${date}="2024-01-01T00:00:00+00:00"`,
            'labels.try_number="1"',
          ].join('\n'),
          orderBy: 'timestamp asc',
          pageSize: 1000,
        },
      ]);
    },
  );

  it.each(versions)(
    'Airflow %s shows a finished attempt line by line, empty lines included',
    async (version) => {
      const { text } = await airflowRead(version, finished);
      expect(text.split('\n')).toEqual(shownLines(log, false));
      // The differences, spelled out: CRLF shows as LF, bytes that are not UTF-8 as U+FFFD, the
      // 368 KB line as two lines, the missing final newline as nothing.
      expect(text).toContain('a Windows line\n\nafter one empty line\n\n\nafter two');
      expect(text).toContain('not UTF-8: \ufffd\ufffd\ufffd(\n   \n{"event"');
      expect(text.endsWith('last line, no newline: 🙂')).toBe(true);
      // Providers older than the text_payload fallback read jsonPayload.message only: the same.
      const old = await airflowRead(version, finished, { jsonOnly: true });
      expect(old.text).toBe(text);
    },
  );

  it.each(versions)(
    'Airflow %s shows a running attempt whole line by whole line, not the line still being written',
    async (version) => {
      const { text } = await airflowRead(version, running);
      // compatLogPieces() cuts inside lines and characters; none of those cuts shows.
      expect(text.split('\n')).toEqual(shownLines(log, true));
    },
  );

  it("replays Airflow 3.x's call with curl and sees the same", async () => {
    const viaCurl = await readLikeAirflow(curlCall(emu.restUrl), settings, '3.x', ti(running));
    const viaFetch = await airflowRead('3.x', running);
    expect(viaCurl.text).toBe(viaFetch.text);
    expect(viaCurl.text.split('\n')).toEqual(shownLines(log, true));
  });

  it('reads both attempts back byte for byte, the running one up to its last flush', async () => {
    expect((await readAll(store, finished)).equals(log)).toBe(true);
    expect((await readAll(store, running)).equals(log)).toBe(true);
    expect(await store.stat(running)).toMatchObject({ size: log.length, complete: false });
    expect(await store.stat(finished)).toMatchObject({ size: log.length, complete: true });
  });

  it("keeps every entry within the service's limit", () => {
    const entries = emu.store.all(`projects/${PROJECT}/logs/airflow`);
    expect(entries.length).toBeGreaterThan(10);
    for (const e of entries) expect(entryBytes(e)).toBeLessThanOrEqual(MAX_ENTRY_BYTES);
  });
});

interface Golden {
  project: string;
  manualLogicalDate?: string;
  entries: Record<string, unknown>[];
  expected: Record<string, string>;
}

async function golden(version: AirflowVersion): Promise<Golden> {
  const file = new URL(
    `../backends/cloud-logging/golden/airflow-${version}-entries.json`,
    import.meta.url,
  );
  return JSON.parse(await readFile(file, 'utf8')) as Golden;
}

/** `dag/run/task/try` of a golden fixture's `expected` as a key. */
function keyOf(id: string, mapIndex = -1): AttemptKey {
  const [dagId, runId, taskId, tryNumber] = id.split('/') as [string, string, string, string];
  return attemptKey({ dagId, runId, taskId, mapIndex, tryNumber: Number(tryNumber) });
}

describe("Airflow's StackdriverTaskHandler → tasklog (golden entries of 2.10 and 3.x)", () => {
  const PROJECT = 'airflow-golden';
  let airflow: AirflowDbFixture;
  let store: CloudLoggingStore;
  const fixtures = {} as Record<AirflowVersion, Golden>;

  beforeAll(async () => {
    for (const version of versions) {
      fixtures[version] = await golden(version);
      const res = await fetch(`${emu.restUrl}/v2/entries:write`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ entries: fixtures[version].entries, partialSuccess: false }),
      });
      expect(res.status, await res.text()).toBe(200);
    }
    // Airflow 3's database knows the manual run's logical date (3.x names the run after run_after).
    airflow = await AirflowDbFixture.create('3.x', 'sqlite');
    const sqlite = new (
      createRequire(new URL('../../packages/core/package.json', import.meta.url))(
        'better-sqlite3',
      ) as new (
        path: string,
      ) => { prepare(sql: string): { run(...p: unknown[]): unknown }; close(): unknown }
    )(airflow.url.slice('sqlite:///'.length));
    sqlite
      .prepare(
        "INSERT INTO dag_run (dag_id, run_id, run_type, logical_date, run_after) VALUES (?, ?, 'manual', ?, ?)",
      )
      .run(
        'golden_dag_3',
        'manual__2024-01-05T10:00:00.123456+00:00',
        '2024-01-05 10:00:00.123456',
        '2024-01-05 10:00:00.123456',
      );
    sqlite.close();
    store = new CloudLoggingStore({
      logName: 'airflow',
      projectId: PROJECT,
      apiEndpoint: emu.restUrl,
      transport: 'rest',
      airflowDb: () => openAirflowDb(airflow.url),
    });
  });
  afterAll(async () => {
    await store?.close();
    await airflow?.close();
  });

  const cases = (version: AirflowVersion) =>
    Object.keys(
      version === '2.10'
        ? {
            'golden_dag_2/scheduled__2024-01-01T00:00:00+00:00/extract/1': 0,
            'golden_dag_2/scheduled__2024-01-01T00:00:00+00:00/extract/2': 0,
            'golden_dag_2/scheduled__2024-01-01T00:00:00+00:00/load/1': 0,
          }
        : {
            'golden_dag_3/scheduled__2024-01-01T00:00:00+00:00/transform/1': 0,
            'golden_dag_3/manual__2024-01-05T10:00:00.123456+00:00/transform/1': 0,
          },
    ).map((id) => [version, id] as const);

  it.each([...cases('2.10'), ...cases('3.x')])(
    "Airflow %s's reader shows %s as the fixture says",
    async (version, id) => {
      const key = keyOf(id);
      const fixture = fixtures[version];
      const logicalDate = key.runId.startsWith('manual__')
        ? fixture.manualLogicalDate!
        : '2024-01-01T00:00:00+00:00';
      const { text } = await readLikeAirflow(
        fetchCall(emu.restUrl),
        { project: PROJECT },
        version,
        { dagId: key.dagId, taskId: key.taskId, logicalDate, tryNumber: key.tryNumber },
      );
      expect(text).toBe(fixture.expected[id]);
    },
  );

  it.each([...cases('2.10'), ...cases('3.x')])(
    "tasklog reads Airflow %s's entries of %s as Airflow shows them",
    async (version, id) => {
      const key = keyOf(id);
      const expected = Buffer.from(fixtures[version].expected[id]!, 'utf8');
      expect((await readAll(store, key)).toString()).toBe(expected.toString());
      expect((await readAll(store, key, { offset: 7 })).equals(expected.subarray(7))).toBe(true);
      expect(await store.stat(key)).toMatchObject({ size: expected.length, complete: false });
      // Airflow's labels name no map index: its entries stand for every one, as in its UI.
      expect((await readAll(store, { ...key, mapIndex: 4 })).equals(expected)).toBe(true);
    },
  );

  it("lists the tries Airflow's entries hold for a run, of one task or of all", async () => {
    const run = { dagId: 'golden_dag_2', runId: 'scheduled__2024-01-01T00:00:00+00:00' };
    const listed = async (filter: object) => {
      const keys: string[] = [];
      for await (const k of store.list({ ...run, ...filter })) {
        keys.push(`${k.taskId}/${k.tryNumber}/${k.mapIndex}`);
      }
      return keys.sort();
    };
    expect(await listed({})).toEqual(['extract/1/-1', 'extract/2/-1', 'load/1/-1']);
    expect(await listed({ taskId: 'extract' })).toEqual(['extract/1/-1', 'extract/2/-1']);
    expect(await listed({ taskId: 'extract', mapIndex: 3 })).toEqual([
      'extract/1/3',
      'extract/2/3',
    ]);
    expect(await listed({ taskId: 'nothing' })).toEqual([]);
    const manual = { dagId: 'golden_dag_3', runId: 'manual__2024-01-05T10:00:00.123456+00:00' };
    const keys: AttemptKey[] = [];
    for await (const k of store.list(manual)) keys.push(k);
    expect(keys).toEqual([{ ...manual, taskId: 'transform', mapIndex: -1, tryNumber: 1 }]);
  });

  it('finds nothing for a run whose logical date it cannot know', async () => {
    const key = attemptKey({
      dagId: 'golden_dag_3',
      runId: 'manual__unknown',
      taskId: 'transform',
      tryNumber: 1,
    });
    expect(await store.stat(key)).toBeUndefined();
    await expect(readAll(store, key)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it("hides Airflow's entries of an attempt deleted through tasklog", async () => {
    const other = new CloudLoggingStore({
      logName: 'airflow',
      projectId: PROJECT,
      apiEndpoint: `http://${emu.url}`,
    });
    try {
      const key = keyOf('golden_dag_2/scheduled__2024-01-01T00:00:00+00:00/load/1');
      expect(await other.stat(key)).toBeDefined();
      await other.delete(key);
      expect(await other.stat(key)).toBeUndefined();
      const keys: AttemptKey[] = [];
      for await (const k of other.list({ dagId: key.dagId, runId: key.runId })) keys.push(k);
      expect(keys.map((k) => k.taskId)).not.toContain('load');
    } finally {
      await other.close();
    }
  });

  it('`tasklog fetch` prints them, the latest try when none is given', async () => {
    const home = await makeTempDir('sd-fetch');
    try {
      const env = {
        PATH: process.env.PATH,
        TASKLOG_HOME: home,
        METADATA_SERVER_DETECTION: 'none',
        TASKLOG__STORE__URL: 'stackdriver://airflow',
        TASKLOG__CLOUD_LOGGING__PROJECT_ID: PROJECT,
        TASKLOG__CLOUD_LOGGING__API_ENDPOINT: `http://${emu.url}`,
        TASKLOG__AGENT__AIRFLOW_DB_URL: airflow.url,
      };
      const v2 = 'golden_dag_2/scheduled__2024-01-01T00:00:00+00:00/extract';
      const latest = await runCli(['fetch', ...v2.split('/')], env);
      expect(latest.stderr).toBe('');
      expect(latest.code).toBe(0);
      expect(latest.stdout.toString()).toBe(fixtures['2.10'].expected[`${v2}/2`]);
      const first = await runCli(['fetch', ...v2.split('/'), '--try', '1'], env);
      expect(first.stdout.toString()).toBe(fixtures['2.10'].expected[`${v2}/1`]);
      const v3 = 'golden_dag_3/manual__2024-01-05T10:00:00.123456+00:00/transform';
      const manual = await runCli(['fetch', ...v3.split('/'), '--try', '1'], env);
      expect(manual.code).toBe(0);
      expect(manual.stdout.toString()).toBe(fixtures['3.x'].expected[`${v3}/1`]);
    } finally {
      await removeTempDir(home);
    }
  });
});
