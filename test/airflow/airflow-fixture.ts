import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { type PostgresFixture, startPostgres } from '../support/postgres.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { airflowSchema } from './schema/dialects.js';

export type AirflowVersion = '2.10' | '3.x';
export type AirflowDbKind = 'postgres' | 'sqlite';

/** A task instance: Airflow's (dag_id, run_id, task_id, map_index); mapIndex -1 when unmapped. */
export interface TaskInstanceRef {
  dagId: string;
  runId: string;
  taskId: string;
  mapIndex?: number;
}

/** The task_instance row as the fixture reads it back. */
export interface TaskInstanceRow {
  /** 3.x only: the UUID of the current try (a new one for every try). */
  id?: string;
  tryNumber: number;
  state: string | null;
}

/** One task_instance_history row: a try Airflow has recorded. */
export interface HistoryRow {
  tryNumber: number;
  state: string | null;
  /** 3.x only: the task_instance.id the try had. */
  taskInstanceId?: string;
}

/**
 * An Airflow metadata database (dag_run, task_instance, task_instance_history as Airflow's DDL
 * leaves them: ./schema/ holds one file per version, written out for each database by
 * schema/dialects.ts) that a test moves the way Airflow does, for code that reads it through
 * `url`, Airflow's `sql_alchemy_conn`.
 *
 *   const airflow = await AirflowDbFixture.create('3.x', 'postgres');
 *   const ti = { dagId: 'etl', runId: 'manual__1', taskId: 'load' };
 *   await airflow.addTaskInstance(ti);      // as the scheduler creates it: try 0, no state
 *   await airflow.startNextTry(ti);         // try 1 running
 *   await airflow.failIntoRetry(ti);        // try 1 up_for_retry, recorded in the history
 *   await airflow.startNextTry(ti);         // try 2 running
 *   await airflow.setState(ti, 'success');
 *
 * Each move is one transaction, as Airflow's are. The fixture's own connection writes; it is not
 * the reader under test.
 */
export class AirflowDbFixture {
  #runs = 0;

  private constructor(
    readonly version: AirflowVersion,
    readonly kind: AirflowDbKind,
    /** Airflow's `sql_alchemy_conn` for this database. */
    readonly url: string,
    private readonly db: SqlWriter,
  ) {}

  static async create(version: AirflowVersion, kind: AirflowDbKind): Promise<AirflowDbFixture> {
    const ddl = await airflowSchema(version, kind);
    const { url, db } = kind === 'postgres' ? await postgresWriter() : await sqliteWriter();
    try {
      await db.script(ddl);
    } catch (err) {
      await db.close();
      throw err;
    }
    return new AirflowDbFixture(version, kind, url, db);
  }

  /**
   * Inserts the task instance as DagRun.verify_integrity does (try_number 0, no state), and its
   * dag_run when the run is new. `at` puts it straight at a try and state instead.
   */
  async addTaskInstance(
    ti: TaskInstanceRef,
    at: { tryNumber?: number; state?: string | null } = {},
  ): Promise<void> {
    await this.db.transaction(async () => {
      const runs = await this.db.all('SELECT 1 FROM dag_run WHERE dag_id = ? AND run_id = ?', [
        ti.dagId,
        ti.runId,
      ]);
      if (runs.length === 0) await this.#insertRun(ti.dagId, ti.runId);
      await this.#insert('task_instance', {
        ...(this.version === '3.x' ? { id: randomUUID() } : {}),
        dag_id: ti.dagId,
        run_id: ti.runId,
        task_id: ti.taskId,
        map_index: ti.mapIndex ?? -1,
        try_number: at.tryNumber ?? 0,
        state: at.state ?? null,
        max_tries: 3,
        hostname: '',
        unixname: 'airflow',
        pool: 'default_pool',
        pool_slots: 1,
        queue: 'default',
        priority_weight: 1,
        operator: 'BashOperator',
      });
    });
  }

  /** Sets the state at the current try, as the worker, the triggerer or a user does. */
  async setState(ti: TaskInstanceRef, state: string | null): Promise<void> {
    const ends =
      state !== null && ['success', 'failed', 'skipped', 'upstream_failed'].includes(state);
    await this.#update(
      ti,
      ends ? 'state = ?, end_date = ?' : 'state = ?',
      ends ? [state, now()] : [state],
    );
  }

  /**
   * The next try starts: the scheduler queues the task instance (DagRun.schedule_tis:
   * try_number + 1, state scheduled), the executor queues it, the worker runs it. Returns the try
   * now running. (A deferred or up_for_reschedule task instance continues its try: resume().)
   */
  async startNextTry(ti: TaskInstanceRef): Promise<number> {
    const { state } = await this.row(ti);
    if (state === 'deferred' || state === 'up_for_reschedule') {
      throw new Error(`a ${state} task instance continues its try: use resume()`);
    }
    await this.#schedule(ti);
    await this.#queueAndRun(ti);
    return (await this.row(ti)).tryNumber;
  }

  /**
   * The same try runs again and appends to the same log: a deferred task whose trigger fired
   * (Trigger.handle_event_submit sets `scheduled` and leaves try_number alone) or an
   * up_for_reschedule sensor due again (schedule_tis keeps its try_number).
   */
  async resume(ti: TaskInstanceRef): Promise<void> {
    const { state } = await this.row(ti);
    if (state === 'deferred') await this.#update(ti, "state = 'scheduled', trigger_id = NULL", []);
    else if (state === 'up_for_reschedule') await this.#schedule(ti);
    else throw new Error(`resume() is for deferred or up_for_reschedule, not ${state}`);
    await this.#queueAndRun(ti);
  }

  /**
   * The running try fails with retries left. 2.10: TaskInstance.fetch_handle_failure_context
   * records the try (TaskInstanceHistory.record_ti: a state that is not finished is recorded as
   * failed) and sets up_for_retry. 3.x: the execution API's retry path calls
   * prepare_db_for_next_try (record_ti, then a new task_instance.id) and sets up_for_retry. In
   * both, try_number stays; the next startNextTry increments it.
   */
  async failIntoRetry(ti: TaskInstanceRef): Promise<void> {
    await this.db.transaction(async () => {
      await this.#recordTry(ti);
      await this.#update(ti, "state = 'up_for_retry', end_date = ?", [now()], false);
    });
  }

  /**
   * A user clears the task instance (clear_task_instances): the try is recorded in the history
   * (3.x: prepare_db_for_next_try, a new id); a running one goes to restarting, any other to no
   * state, to be scheduled again with the next try_number.
   */
  async clear(ti: TaskInstanceRef): Promise<void> {
    await this.db.transaction(async () => {
      await this.#recordTry(ti);
      await this.#update(
        ti,
        "state = CASE WHEN state = 'running' THEN 'restarting' ELSE NULL END",
        [],
        false,
      );
    });
  }

  /**
   * Dag runs of `dagId` as Airflow stores them, each with its logical date as SQL text (null: a
   * 3.x run without one, triggered by an asset), in one transaction.
   */
  async addRuns(dagId: string, runs: [runId: string, date: string | null][]): Promise<void> {
    const column = this.version === '2.10' ? 'execution_date' : 'logical_date';
    await this.db.transaction(async () => {
      for (const [runId, date] of runs) {
        await this.#insert('dag_run', {
          dag_id: dagId,
          run_id: runId,
          run_type: 'manual',
          [column]: date,
          ...(this.version === '3.x' ? { run_after: date ?? '2024-06-01 00:00:00' } : {}),
        });
      }
    });
  }

  async row(ti: TaskInstanceRef): Promise<TaskInstanceRow> {
    const rows = await this.db.all(
      `SELECT ${this.version === '3.x' ? 'id, ' : ''}try_number, state FROM task_instance
        WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?`,
      keyOf(ti),
    );
    const row = rows[0];
    if (row === undefined) throw new Error(`no task instance ${JSON.stringify(ti)}`);
    return {
      ...(row.id === undefined ? {} : { id: String(row.id) }),
      tryNumber: Number(row.try_number ?? 0),
      state: row.state === null ? null : String(row.state),
    };
  }

  async history(ti: TaskInstanceRef): Promise<HistoryRow[]> {
    const rows = await this.db.all(
      `SELECT ${this.version === '3.x' ? 'task_instance_id, ' : ''}try_number, state
         FROM task_instance_history
        WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ? ORDER BY try_number`,
      keyOf(ti),
    );
    return rows.map((r) => ({
      tryNumber: Number(r.try_number),
      state: r.state === null ? null : String(r.state),
      ...(r.task_instance_id === undefined ? {} : { taskInstanceId: String(r.task_instance_id) }),
    }));
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  /** TaskInstanceHistory.record_ti: once per try; a state not in State.finished becomes failed. */
  async #recordTry(ti: TaskInstanceRef): Promise<void> {
    const copied = [
      'task_id',
      'dag_id',
      'run_id',
      'map_index',
      'try_number',
      'start_date',
      'end_date',
      'duration',
      'max_tries',
      'hostname',
      'unixname',
      'pool',
      'pool_slots',
      'queue',
      'priority_weight',
      'operator',
      'queued_dttm',
    ];
    const target = [...copied, 'state'];
    const source = [
      ...copied,
      `CASE WHEN state IN ('success', 'failed', 'skipped', 'upstream_failed', 'removed')
         THEN state ELSE 'failed' END`,
    ];
    if (this.version === '3.x') {
      target.push('task_instance_id');
      source.push('id');
    }
    await this.db.run(
      `INSERT INTO task_instance_history (${target.join(', ')})
       SELECT ${source.join(', ')} FROM task_instance ti
        WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?
          AND NOT EXISTS (SELECT 1 FROM task_instance_history h
                           WHERE h.dag_id = ti.dag_id AND h.run_id = ti.run_id
                             AND h.task_id = ti.task_id AND h.map_index = ti.map_index
                             AND h.try_number = ti.try_number)`,
      keyOf(ti),
    );
    if (this.version === '3.x') {
      // prepare_db_for_next_try: the next try is a new row identity (uuid7 in Airflow).
      await this.#update(ti, 'id = ?', [randomUUID()], false);
    }
  }

  /** DagRun.schedule_tis: try_number + 1 unless the task instance is up_for_reschedule. */
  async #schedule(ti: TaskInstanceRef): Promise<void> {
    await this.#update(
      ti,
      `state = 'scheduled', try_number = CASE WHEN state IS NULL OR state <> 'up_for_reschedule'
         THEN COALESCE(try_number, 0) + 1 ELSE try_number END`,
      [],
    );
  }

  async #queueAndRun(ti: TaskInstanceRef): Promise<void> {
    await this.#update(ti, "state = 'queued', queued_dttm = ?", [now()]);
    await this.#update(ti, "state = 'running', start_date = ?, end_date = NULL", [now()]);
  }

  async #insert(table: string, row: Record<string, unknown>): Promise<void> {
    const columns = Object.keys(row);
    await this.db.run(
      `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
      Object.values(row),
    );
  }

  async #update(
    ti: TaskInstanceRef,
    set: string,
    params: unknown[],
    ownTransaction = true,
  ): Promise<void> {
    const update = async () => {
      const changed = await this.db.run(
        `UPDATE task_instance SET ${set}, updated_at = ?
          WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ?`,
        [...params, now(), ...keyOf(ti)],
      );
      if (changed !== 1) throw new Error(`no task instance ${JSON.stringify(ti)}`);
    };
    await (ownTransaction ? this.db.transaction(update) : update());
  }

  async #insertRun(dagId: string, runId: string): Promise<void> {
    // Distinct per dag: 2.10 keeps dag_run_dag_id_execution_date_key, 3.x the logical_date one.
    const date = timestamp(new Date(Date.UTC(2024, 0, 1) + this.#runs++ * 60_000));
    const run = { dag_id: dagId, run_id: runId, run_type: 'manual', state: 'running' };
    await this.#insert(
      'dag_run',
      this.version === '2.10'
        ? { ...run, execution_date: date, external_trigger: this.kind === 'sqlite' ? 1 : true }
        : { ...run, logical_date: date, run_after: date },
    );
  }
}

function keyOf(ti: TaskInstanceRef): unknown[] {
  return [ti.dagId, ti.runId, ti.taskId, ti.mapIndex ?? -1];
}

function now(): string {
  return timestamp(new Date());
}

/** A UTC timestamp both databases take: `2024-01-01 00:00:00.000000+00:00`. */
function timestamp(date: Date): string {
  return `${date.toISOString().replace('T', ' ').replace('Z', '')}000+00:00`;
}

/** The few writing operations the fixture needs, over node-postgres or better-sqlite3. */
interface SqlWriter {
  /** Runs a script of several statements (the DDL). */
  script(sql: string): Promise<void>;
  /** Runs one statement with `?` placeholders; returns the number of rows changed. */
  run(sql: string, params: unknown[]): Promise<number>;
  all(sql: string, params: unknown[]): Promise<Record<string, unknown>[]>;
  transaction(fn: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

interface PgClient {
  connect(): Promise<void>;
  query(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
  end(): Promise<void>;
}

async function postgresWriter(): Promise<{ url: string; db: SqlWriter }> {
  const postgres: PostgresFixture = await startPostgres();
  const pg = createRequire(import.meta.url)('pg') as {
    Client: new (options: { connectionString: string }) => PgClient;
  };
  const client = new pg.Client({ connectionString: postgres.url });
  await client.connect();
  const numbered = (sql: string) => {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  };
  const db: SqlWriter = {
    script: async (sql) => {
      await client.query(sql);
    },
    run: async (sql, params) => (await client.query(numbered(sql), params)).rowCount ?? 0,
    all: async (sql, params) => (await client.query(numbered(sql), params)).rows,
    transaction: async (fn) => {
      await client.query('BEGIN');
      try {
        await fn();
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
    },
    close: async () => {
      await client.end();
      await postgres.close();
    },
  };
  // SQLAlchemy's form of the URL, as airflow.cfg would have it.
  return { url: postgres.url.replace(/^postgres:\/\//, 'postgresql+psycopg2://'), db };
}

interface SqliteDatabase {
  exec(sql: string): unknown;
  pragma(sql: string): unknown;
  prepare(sql: string): {
    run(...params: unknown[]): { changes: number };
    all(...params: unknown[]): Record<string, unknown>[];
  };
  close(): unknown;
}

// better-sqlite3 is @tasklog/core's dependency; the test package borrows it from there rather
// than declaring a second copy of a native module.
const coreRequire = createRequire(new URL('../../packages/core/package.json', import.meta.url));

/** better-sqlite3, the driver the reader under test loads for SQLite too. */
export const Sqlite = coreRequire('better-sqlite3') as {
  new (path: string): SqliteDatabase;
  prototype: SqliteDatabase;
};

async function sqliteWriter(): Promise<{ url: string; db: SqlWriter }> {
  const dir = await makeTempDir('airflow');
  const path = join(dir, 'airflow.db');
  const sqlite = new Sqlite(path);
  sqlite.pragma('foreign_keys = ON'); // as Airflow's settings.py does for every SQLite connection
  sqlite.pragma('synchronous = OFF'); // a test database need not survive a power loss
  const db: SqlWriter = {
    script: async (sql) => {
      sqlite.exec(sql);
    },
    run: async (sql, params) => sqlite.prepare(sql).run(...params).changes,
    all: async (sql, params) => sqlite.prepare(sql).all(...params),
    transaction: async (fn) => {
      sqlite.exec('BEGIN IMMEDIATE');
      try {
        await fn();
        sqlite.exec('COMMIT');
      } catch (err) {
        sqlite.exec('ROLLBACK');
        throw err;
      }
    },
    close: async () => {
      sqlite.close();
      await removeTempDir(dir);
    },
  };
  // Four slashes: SQLAlchemy's absolute path.
  return { url: `sqlite:///${path}`, db };
}
