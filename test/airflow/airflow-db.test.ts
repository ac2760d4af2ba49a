import { createRequire } from 'node:module';
import {
  AbortedError,
  type AirflowDb,
  type AttemptKey,
  BackendUnavailableError,
  InvalidInputError,
  openAirflowDb,
} from '@tasklog/core';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AIRFLOW_STATUS_BATCH_SIZE } from '../../packages/core/src/airflow/airflow-db.js';
import {
  AirflowDbFixture,
  type AirflowDbKind,
  type AirflowVersion,
  Sqlite,
  type TaskInstanceRef,
} from './airflow-fixture.js';

// node-postgres, the driver the reader loads for PostgreSQL, to count the statements it sends.
const pg = createRequire(import.meta.url)('pg') as {
  Client: { prototype: { query(...args: unknown[]): unknown } };
};

/** PGlite ignores startup parameters, so session settings can only be checked on a server. */
const onServer = !!process.env.TASKLOG_TEST_POSTGRES_URL;

/** The reader's own connection, to try what its interface does not offer (a write). */
interface Connection {
  query(sql: string, params: unknown[], signal?: AbortSignal): Promise<unknown>;
}
function connectionOf(db: AirflowDb): Connection {
  return (db as unknown as { connection: Connection }).connection;
}

const combinations: [AirflowVersion, AirflowDbKind][] = [
  ['2.10', 'postgres'],
  ['2.10', 'sqlite'],
  ['3.x', 'postgres'],
  ['3.x', 'sqlite'],
];

describe.each(combinations)('Airflow %s on %s', (version, kind) => {
  let airflow: AirflowDbFixture;
  let db: AirflowDb;
  let dags = 0;

  beforeAll(async () => {
    airflow = await AirflowDbFixture.create(version, kind);
    db = await openAirflowDb(airflow.url);
  });
  afterAll(async () => {
    await db?.close();
    await airflow?.close();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /** A task instance no other test touches. */
  function taskInstance(extra: Partial<TaskInstanceRef> = {}): TaskInstanceRef {
    dags += 1;
    return {
      dagId: `dag_${dags}`,
      runId: 'manual__2024-01-01T00:00:00+00:00',
      taskId: 'load',
      ...extra,
    };
  }
  function key(ti: TaskInstanceRef, tryNumber: number): AttemptKey {
    return {
      dagId: ti.dagId,
      runId: ti.runId,
      taskId: ti.taskId,
      mapIndex: ti.mapIndex ?? -1,
      tryNumber,
    };
  }
  async function statusOf(ti: TaskInstanceRef, tryNumber: number) {
    const [status] = await db.statusOf([key(ti, tryNumber)]);
    return status;
  }
  /** A task instance whose first try is running. */
  async function running(extra: Partial<TaskInstanceRef> = {}): Promise<TaskInstanceRef> {
    const ti = taskInstance(extra);
    await airflow.addTaskInstance(ti);
    await airflow.startNextTry(ti);
    return ti;
  }

  /** Counts the statements the reader sends through its driver; the spy passes each one on. */
  function spyOnStatements() {
    return kind === 'postgres'
      ? vi.spyOn(pg.Client.prototype, 'query')
      : vi.spyOn(Sqlite.prototype, 'prepare');
  }

  it(`detects the ${version} schema`, () => {
    expect(db.schema).toBe(version === '2.10' ? '2' : '3');
  });

  it('reports a running try as not finished', async () => {
    const ti = await running();
    expect(await statusOf(ti, 1)).toEqual({ finished: false, state: 'running' });
  });

  // The states a try ends at, and those of a try still on its way.
  const endStates = ['success', 'failed', 'skipped', 'upstream_failed', 'removed', 'up_for_retry'];
  const openStates = [
    'deferred',
    'up_for_reschedule',
    'queued',
    'scheduled',
    'running',
    'restarting',
  ];
  it.each([
    ...endStates.map((state) => ({ state, finished: true })),
    ...openStates.map((state) => ({ state, finished: false })),
  ])(
    'reports a try that sits at $state with that state, finished: $finished',
    async ({ state, finished }) => {
      const ti = await running();
      await airflow.setState(ti, state);
      expect(await statusOf(ti, 1)).toEqual({ finished, state });
    },
  );

  it('reports a try that failed into a retry as finished, with its recorded state once the next try runs', async () => {
    const ti = await running();
    await airflow.failIntoRetry(ti);
    expect(await statusOf(ti, 1)).toEqual({ finished: true, state: 'up_for_retry' });
    expect(await airflow.startNextTry(ti)).toBe(2);
    expect(await db.statusOf([key(ti, 1), key(ti, 2)])).toEqual([
      { finished: true, state: 'failed' },
      { finished: false, state: 'running' },
    ]);
  });

  it('reports a try Airflow moved past without recording it as finished, with state null', async () => {
    const ti = taskInstance();
    await airflow.addTaskInstance(ti, { tryNumber: 3, state: 'running' });
    expect(await statusOf(ti, 2)).toEqual({ finished: true, state: null });
  });

  // A deferred task resumes on the triggerer's event; a sensor in reschedule mode is poked again.
  it.each(['deferred', 'up_for_reschedule'])(
    'keeps a try open while it sits at %s and after it resumes in the same try, until it succeeds',
    async (state) => {
      const ti = await running();
      await airflow.setState(ti, state);
      expect(await statusOf(ti, 1)).toEqual({ finished: false, state });
      await airflow.resume(ti);
      expect(await airflow.row(ti)).toMatchObject({ tryNumber: 1, state: 'running' });
      expect(await statusOf(ti, 1)).toEqual({ finished: false, state: 'running' });
      await airflow.setState(ti, 'success');
      expect(await statusOf(ti, 1)).toEqual({ finished: true, state: 'success' });
    },
  );

  it('reports a try that was cleared after it ended as finished, with its recorded state', async () => {
    const ti = await running();
    await airflow.setState(ti, 'success');
    await airflow.clear(ti);
    expect(await airflow.row(ti)).toMatchObject({ tryNumber: 1, state: null });
    expect(await statusOf(ti, 1)).toEqual({ finished: true, state: 'success' });
  });

  it('reports a running try that was cleared as not finished while it is stopped', async () => {
    const ti = await running();
    await airflow.clear(ti);
    expect(await statusOf(ti, 1)).toEqual({ finished: false, state: 'restarting' });
  });

  it('reports a task instance at that try with no state and no history as not finished', async () => {
    const ti = taskInstance();
    await airflow.addTaskInstance(ti, { tryNumber: 1, state: null });
    expect(await statusOf(ti, 1)).toEqual({ finished: false, state: null });
  });

  it('reports a try Airflow has not reached as not finished, with state null', async () => {
    const ti = await running();
    expect(await statusOf(ti, 2)).toEqual({ finished: false, state: null });
  });

  it('answers undefined for an unknown dag, run, task or map index', async () => {
    const ti = await running();
    const known = key(ti, 1);
    expect(
      await db.statusOf([
        { ...known, dagId: 'other_dag' },
        { ...known, runId: 'manual__2030-01-01T00:00:00+00:00' },
        { ...known, taskId: 'other_task' },
        { ...known, mapIndex: 0 },
        known,
      ]),
    ).toEqual([undefined, undefined, undefined, undefined, { finished: false, state: 'running' }]);
  });

  it('tells mapped task instances apart by their map index', async () => {
    const first = await running({ mapIndex: 0 });
    const second = { ...first, mapIndex: 1 };
    await airflow.addTaskInstance(second);
    await airflow.startNextTry(second);
    await airflow.setState(first, 'success');
    expect(
      await db.statusOf([key(first, 1), key(second, 1), key({ ...first, mapIndex: 2 }, 1)]),
    ).toEqual([
      { finished: true, state: 'success' },
      { finished: false, state: 'running' },
      undefined,
    ]);
  });

  it('answers 1,200 keys with one query per 500, aligned with the keys', async () => {
    const dagId = `bulk_${version}`;
    const runId = 'scheduled__2024-01-01T00:00:00+00:00';
    const tis: TaskInstanceRef[] = [];
    for (let i = 0; i < 300; i++) {
      const ti = { dagId, runId, taskId: `task_${i}` };
      await airflow.addTaskInstance(ti, {
        tryNumber: 1,
        state: i % 2 === 0 ? 'success' : 'running',
      });
      tis.push(ti);
    }
    // Per task instance: its try, the next one, an unknown map index, an unknown task.
    const keys = tis.flatMap((ti) => [
      key(ti, 1),
      key(ti, 2),
      key({ ...ti, mapIndex: 7 }, 1),
      key({ ...ti, taskId: `${ti.taskId}_gone` }, 1),
    ]);
    expect(keys).toHaveLength(1200);
    const statements = spyOnStatements();
    const statuses = await db.statusOf(keys);
    expect(statements).toHaveBeenCalledTimes(Math.ceil(1200 / AIRFLOW_STATUS_BATCH_SIZE));
    expect(statuses).toEqual(
      tis.flatMap((_, i) => [
        i % 2 === 0 ? { finished: true, state: 'success' } : { finished: false, state: 'running' },
        { finished: false, state: null },
        undefined,
        undefined,
      ]),
    );
  });

  it("reads runs' logical dates as Airflow prints them in its labels, microseconds and offsets included", async () => {
    dags += 1;
    const dagId = `dated_${dags}`;
    // SQLAlchemy stores UTC without an offset in SQLite; PostgreSQL keeps the instant.
    const utc = (text: string) => (kind === 'sqlite' ? text : `${text}+00`);
    await airflow.addRuns(dagId, [
      ['manual__a', utc('2024-03-05 10:20:30.123456')],
      ['manual__b', utc('2024-03-06 00:00:00')],
      [
        'manual__c',
        kind === 'sqlite' ? '2024-03-07 23:30:00.000001' : '2024-03-08 01:30:00.000001+02',
      ],
    ]);
    expect(
      await db.logicalDates([
        { dagId, runId: 'manual__a' },
        { dagId, runId: 'manual__b' },
        { dagId, runId: 'manual__c' },
        { dagId, runId: 'manual__unknown' },
        { dagId: 'other_dag', runId: 'manual__a' },
      ]),
    ).toEqual([
      '2024-03-05T10:20:30.123456+00:00',
      '2024-03-06T00:00:00+00:00',
      '2024-03-07T23:30:00.000001+00:00',
      undefined,
      undefined,
    ]);
  });

  it("reads the dates of the fixture's runs (stored with an offset) too", async () => {
    const ti = await running({ runId: 'scheduled__2024-01-01T00:00:00+00:00' });
    const [date] = await db.logicalDates([ti]);
    expect(date).toMatch(/^2024-01-01T00:\d{2}:00\+00:00$/);
  });

  it.skipIf(version !== '3.x')('answers null for a 3.x run without a logical date', async () => {
    dags += 1;
    const dagId = `undated_${dags}`;
    await airflow.addRuns(dagId, [['asset_triggered__2024-06-01T00:00:00+00:00_abc', null]]);
    expect(
      await db.logicalDates([{ dagId, runId: 'asset_triggered__2024-06-01T00:00:00+00:00_abc' }]),
    ).toEqual([null]);
  });

  it('answers 1,200 runs with one query per 500, aligned with the runs', async () => {
    dags += 1;
    const dagId = `many_${dags}`;
    await airflow.addRuns(
      dagId,
      Array.from({ length: 300 }, (_, i) => {
        const minute = String(i % 60).padStart(2, '0');
        const hour = String(Math.floor(i / 60)).padStart(2, '0');
        const date = `2024-02-01 ${hour}:${minute}:00`;
        return [`manual__${i}`, kind === 'sqlite' ? date : `${date}+00`];
      }),
    );
    const runs = Array.from({ length: 1200 }, (_, n) => ({
      dagId,
      runId: n % 4 === 0 ? `missing__${n}` : `manual__${n % 300}`,
    }));
    const statements = spyOnStatements();
    const dates = await db.logicalDates(runs);
    expect(statements).toHaveBeenCalledTimes(Math.ceil(1200 / AIRFLOW_STATUS_BATCH_SIZE));
    expect(dates).toEqual(
      runs.map(({ runId }) => {
        if (runId.startsWith('missing')) return undefined;
        const i = Number(runId.slice('manual__'.length));
        const hh = String(Math.floor(i / 60)).padStart(2, '0');
        return `2024-02-01T${hh}:${String(i % 60).padStart(2, '0')}:00+00:00`;
      }),
    );
  });

  it('refuses a run without dagId or runId with InvalidInputError naming it', async () => {
    const err = await db
      .logicalDates([
        { dagId: 'a', runId: 'b' },
        { dagId: 'a', runId: '' },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toContain('runs[1]');
  });

  it('answers no keys without asking the database', async () => {
    expect(await db.statusOf([])).toEqual([]);
  });

  it('refuses a malformed key with InvalidInputError naming it', async () => {
    const ti = await running();
    const err = await db
      .statusOf([key(ti, 1), { ...key(ti, 1), tryNumber: 0 }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toContain('keys[1]');
  });

  it('gives AbortedError for an aborted signal without querying', async () => {
    const ti = await running();
    const statements = spyOnStatements();
    const err = await db
      .statusOf([key(ti, 1)], { signal: AbortSignal.abort() })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortedError);
    expect(statements).not.toHaveBeenCalled();
  });

  // PGlite runs in this thread: a pg_sleep there would stop the timer that aborts it.
  it.skipIf(kind !== 'postgres' || !onServer)(
    'stops waiting for a slow statement when the signal aborts, and stays usable',
    async () => {
      const started = Date.now();
      const err = await connectionOf(db)
        .query('SELECT pg_sleep(5)', [], AbortSignal.timeout(200))
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AbortedError);
      expect(Date.now() - started).toBeLessThan(2_000);
      const ti = await running();
      expect(await statusOf(ti, 1)).toEqual({ finished: false, state: 'running' });
    },
  );

  it.skipIf(kind === 'postgres' && !onServer)(
    'refuses a write through its own connection, proving every session read-only',
    async () => {
      const write = () =>
        connectionOf(db).query(
          // RETURNING: better-sqlite3 only runs a statement that returns rows through query().
          "INSERT INTO dag_run (dag_id, run_id, run_type) VALUES ('x', 'y', 'manual') RETURNING id",
          [],
        );
      // Two at once, so both of the PostgreSQL pool's sessions are tried.
      const results = await Promise.allSettled([write(), write()]);
      for (const result of results) {
        expect(result.status).toBe('rejected');
        const err = (result as PromiseRejectedResult).reason as Error;
        expect(err).toBeInstanceOf(BackendUnavailableError);
        expect((err.cause as { code?: string }).code).toBe(
          kind === 'postgres' ? '25006' : 'SQLITE_READONLY',
        );
      }
    },
  );

  it.skipIf(kind !== 'postgres' || !onServer)(
    'names its sessions tasklog-agent and bounds their statements',
    async () => {
      expect(
        await connectionOf(db).query(
          "SELECT current_setting('application_name') AS name, current_setting('statement_timeout') AS timeout",
          [],
        ),
      ).toEqual([{ name: 'tasklog-agent', timeout: '10s' }]);
    },
  );
});
