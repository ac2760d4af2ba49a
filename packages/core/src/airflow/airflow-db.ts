import { type AttemptKey, attemptKey } from '../attempt-key.js';
import { InvalidInputError } from '../errors.js';
import {
  type AirflowConnection,
  connectAirflowDb,
  type Row,
  throwIfAborted,
} from './airflow-connection.js';

/** What Airflow's metadata database says about one try of a task instance. */
export interface AirflowTryStatus {
  /** The try has ended: Airflow moved past it, or it sits at that try in a state that ends a try. */
  finished: boolean;
  /**
   * Airflow's state of that try as Airflow reports it (task_instance.state, or
   * task_instance_history.state for an earlier try); null when Airflow has none.
   */
  state: string | null;
}

/** A dag run: Airflow's (dag_id, run_id). */
export interface AirflowRunRef {
  /** Airflow's `dag_id`. */
  dagId: string;
  /** Airflow's `run_id`. */
  runId: string;
}

/**
 * A read-only view of Airflow's metadata database: whether attempts have finished, and the
 * logical dates of runs. Open one with `openAirflowDb(sql_alchemy_conn)`.
 *
 * Errors: InvalidInputError for a malformed key; BackendUnavailableError (the driver's error as
 * cause, the URL masked) when the database fails; AbortedError when `signal` aborts.
 */
export interface AirflowDb {
  /** Which Airflow schema was detected: '2' (2.10) or '3' (3.x). */
  readonly schema: '2' | '3';
  /**
   * Status of each key's try, aligned with `keys`; undefined where Airflow has no such task
   * instance. ONE query per call (or per batch of at most 500 keys), never one per key.
   */
  statusOf(
    keys: readonly AttemptKey[],
    options?: { signal?: AbortSignal },
  ): Promise<(AirflowTryStatus | undefined)[]>;
  /**
   * The logical date of each run (dag_run.logical_date in 3.x, execution_date in 2.10), aligned
   * with `runs`, as Airflow prints it in its Stackdriver labels (`airflowIsoformat`); null where
   * the run has none (3.x runs started without one), undefined where Airflow has no such run.
   * ONE query per call (or per batch of at most 500 runs). Throws InvalidInputError for a run
   * without dagId or runId.
   */
  logicalDates(
    runs: readonly AirflowRunRef[],
    options?: { signal?: AbortSignal },
  ): Promise<(string | null | undefined)[]>;
  /** Closes the database connection. */
  close(): Promise<void>;
}

/** Keys per query: 6 parameters each, far below PostgreSQL's 65,535 and SQLite's 32,766. */
export const AIRFLOW_STATUS_BATCH_SIZE = 500;

/**
 * States in which a try has ended while the task instance still sits at it: Airflow's
 * `State.finished` (airflow/utils/state.py) plus `up_for_retry`, whose next try gets the next
 * try_number when the scheduler queues it (DagRun.schedule_tis).
 *
 * Not here, so not finished: `running`, `queued`, `scheduled`; `deferred` and `up_for_reschedule`,
 * which resume the same try and append to its log; `restarting` (and 2.x's retired `shutdown`),
 * where the try's own process is still being stopped and writes its last lines before Airflow
 * moves it on; null (see `tryStatus`); and any state a later Airflow may add.
 */
const TRY_ENDING_STATES: ReadonlySet<string> = new Set([
  'success',
  'failed',
  'skipped',
  'upstream_failed',
  'removed',
  'up_for_retry',
]);

/** Columns the reader needs, in both task_instance and task_instance_history. */
const REQUIRED_COLUMNS = ['dag_id', 'run_id', 'task_id', 'map_index', 'try_number', 'state'];

/**
 * Opens Airflow's metadata database READ-ONLY. `url` is Airflow's `sql_alchemy_conn` as written
 * in airflow.cfg: postgresql://, postgresql+psycopg2://, postgres://, sqlite:////abs/path.db
 * (SQLAlchemy: four slashes = absolute), sqlite:///relative.db (relative to cwd).
 *
 * PostgreSQL: a pool of at most 2 connections named `tasklog-agent`, each session read-only
 * (`default_transaction_read_only`) with a 10 s statement timeout. SQLite: opened read-only; the
 * file must exist.
 *
 * Throws InvalidInputError for a URL it cannot serve or a database that is not Airflow's (no
 * task_instance table) or older than 2.10 (no task_instance_history), and
 * BackendUnavailableError when the database cannot be reached.
 */
export async function openAirflowDb(url: string): Promise<AirflowDb> {
  const connection = await connectAirflowDb(url);
  try {
    return new SqlAirflowDb(connection, await detectSchema(connection));
  } catch (err) {
    await connection.close().catch(() => undefined);
    throw err;
  }
}

/**
 * '3' when task_instance has the `id` column: Airflow 3.0 gave task instances a UUID primary key
 * (migration d59cbbef95eb), new with every try since 29ce7909c52b. Airflow 2.10's key is
 * (dag_id, task_id, run_id, map_index). The columns the reader uses are the same in both.
 */
async function detectSchema(connection: AirflowConnection): Promise<'2' | '3'> {
  const where = `Airflow database ${connection.url}`;
  const ti = await connection.columns('task_instance');
  if (ti === undefined) {
    throw new InvalidInputError(
      `${where} has no task_instance table: sql_alchemy_conn must name Airflow's metadata database (the one \`airflow db migrate\` manages), with its schema on the search_path`,
    );
  }
  const history = await connection.columns('task_instance_history');
  const missing = REQUIRED_COLUMNS.filter((c) => !ti.includes(c));
  if (history === undefined || missing.length > 0) {
    throw new InvalidInputError(
      `${where} is older than Airflow 2.10 (${history === undefined ? 'no task_instance_history table' : `task_instance lacks ${missing.join(', ')}`}): tasklog reads Airflow 2.10 and 3.x; run \`airflow db migrate\` after upgrading Airflow`,
    );
  }
  return ti.includes('id') ? '3' : '2';
}

class SqlAirflowDb implements AirflowDb {
  constructor(
    readonly connection: AirflowConnection,
    readonly schema: '2' | '3',
  ) {}

  async statusOf(
    keys: readonly AttemptKey[],
    options: { signal?: AbortSignal } = {},
  ): Promise<(AirflowTryStatus | undefined)[]> {
    const checked = keys.map((k, i) => {
      try {
        return attemptKey(k);
      } catch (err) {
        throw new InvalidInputError(`keys[${i}]: ${(err as Error).message}`, { cause: err });
      }
    });
    const statuses: (AirflowTryStatus | undefined)[] = new Array(checked.length).fill(undefined);
    for (let start = 0; start < checked.length; start += AIRFLOW_STATUS_BATCH_SIZE) {
      throwIfAborted(options.signal, this.connection.url);
      const batch = checked.slice(start, start + AIRFLOW_STATUS_BATCH_SIZE);
      const rows = await this.connection.query(
        statusQuery(batch.length, (n) => this.connection.placeholder(n)),
        batch.flatMap((k, i) => [i, k.dagId, k.runId, k.taskId, k.mapIndex, k.tryNumber]),
        options.signal,
      );
      for (const row of rows) {
        const i = Number(row.i);
        statuses[start + i] = tryStatus(batch[i]!.tryNumber, row);
      }
    }
    return statuses;
  }

  async logicalDates(
    runs: readonly AirflowRunRef[],
    options: { signal?: AbortSignal } = {},
  ): Promise<(string | null | undefined)[]> {
    runs.forEach((run, i) => {
      const ok = (v: unknown) => typeof v === 'string' && v !== '';
      if (!ok(run?.dagId) || !ok(run?.runId)) {
        throw new InvalidInputError(`runs[${i}]: dagId and runId must be non-empty strings`);
      }
    });
    const dates: (string | null | undefined)[] = new Array(runs.length).fill(undefined);
    const column = this.schema === '3' ? 'logical_date' : 'execution_date';
    for (let start = 0; start < runs.length; start += AIRFLOW_STATUS_BATCH_SIZE) {
      throwIfAborted(options.signal, this.connection.url);
      const batch = runs.slice(start, start + AIRFLOW_STATUS_BATCH_SIZE);
      const rows = await this.connection.query(
        logicalDateQuery(batch.length, column, this.connection),
        batch.flatMap((r, i) => [i, r.dagId, r.runId]),
        options.signal,
      );
      for (const row of rows) {
        const i = Number(row.i);
        dates[start + i] =
          row.d === null || row.d === undefined ? null : airflowIsoformat(String(row.d));
      }
    }
    return dates;
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}

/**
 * One statement for a batch of runs, joined to dag_run on its unique (dag_id, run_id).
 * PostgreSQL prints the timestamptz in UTC with microseconds whatever the session's DateStyle
 * and TimeZone; SQLite returns what SQLAlchemy stored (UTC, as text).
 */
function logicalDateQuery(
  count: number,
  column: 'logical_date' | 'execution_date',
  connection: Pick<AirflowConnection, 'placeholder' | 'dialect'>,
): string {
  const values: string[] = [];
  for (let row = 0; row < count; row++) {
    const p = (n: number) => connection.placeholder(row * 3 + n);
    values.push(`(CAST(${p(1)} AS INTEGER), CAST(${p(2)} AS TEXT), CAST(${p(3)} AS TEXT))`);
  }
  const date =
    connection.dialect === 'postgres'
      ? `to_char(r.${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')`
      : `r.${column}`;
  return `WITH k (i, dag_id, run_id) AS (VALUES ${values.join(', ')})
SELECT k.i, ${date} AS d
  FROM k
  JOIN dag_run r ON r.dag_id = k.dag_id AND r.run_id = k.run_id`;
}

const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?\s*(?:([Zz])|([+-])(\d{2}):?(\d{2})?)?$/;

/**
 * A timestamp as Airflow prints a UTC datetime with `isoformat()` — in its run ids
 * (`scheduled__2024-01-01T00:00:00+00:00`) and its Stackdriver labels: `YYYY-MM-DDTHH:MM:SS`,
 * `.ffffff` only when the microseconds are not 0, then `+00:00`. Takes RFC 3339 / ISO 8601
 * (`T` or a space, any offset, `Z`, none = UTC as SQLAlchemy stores it in SQLite); undefined
 * for anything else.
 */
export function airflowIsoformat(text: string): string | undefined {
  const m = TIMESTAMP.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac = '', , sign, oh = '0', om = '0'] = m;
  const wall = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!);
  const check = new Date(wall);
  if (
    Number.isNaN(wall) ||
    check.getUTCFullYear() !== +y! ||
    check.getUTCMonth() !== +mo! - 1 ||
    check.getUTCDate() !== +d! ||
    +h! > 23 ||
    +mi! > 59 ||
    +s! > 59
  ) {
    return undefined;
  }
  const offsetMs = sign === undefined ? 0 : (sign === '+' ? 1 : -1) * (+oh * 60 + +om) * 60_000;
  const utc = new Date(wall - offsetMs).toISOString().slice(0, 19);
  const micros = frac.padEnd(6, '0').slice(0, 6);
  return `${utc}${micros === '000000' ? '' : `.${micros}`}+00:00`;
}

/**
 * One statement for a batch: the keys as a VALUES list (every value a parameter), joined to
 * task_instance on its unique (dag_id, task_id, run_id, map_index) and to the history row of the
 * key's try, unique on the same plus try_number. Keys without a task instance return no row.
 * The casts type the parameters for PostgreSQL; SQLite takes them as they come.
 */
function statusQuery(count: number, placeholder: (n: number) => string): string {
  const values: string[] = [];
  for (let row = 0; row < count; row++) {
    const p = (column: number) => placeholder(row * 6 + column);
    values.push(
      `(CAST(${p(1)} AS INTEGER), CAST(${p(2)} AS TEXT), CAST(${p(3)} AS TEXT), CAST(${p(4)} AS TEXT), CAST(${p(5)} AS INTEGER), CAST(${p(6)} AS INTEGER))`,
    );
  }
  return `WITH k (i, dag_id, run_id, task_id, map_index, try_number) AS (VALUES ${values.join(', ')})
SELECT k.i, ti.try_number AS ti_try_number, ti.state AS ti_state,
       h.try_number AS h_try_number, h.state AS h_state
  FROM k
  JOIN task_instance ti
    ON ti.dag_id = k.dag_id AND ti.run_id = k.run_id AND ti.task_id = k.task_id
   AND ti.map_index = k.map_index
  LEFT JOIN task_instance_history h
    ON h.dag_id = k.dag_id AND h.run_id = k.run_id AND h.task_id = k.task_id
   AND h.map_index = k.map_index AND h.try_number = k.try_number`;
}

/**
 * The rules, for a task instance row and the history row of the asked try (if any):
 *
 * - The row has moved past the try (task_instance.try_number > try): finished, with the
 *   history's state of that try, or null when Airflow kept none.
 * - The row has not reached the try (task_instance.try_number < try): not finished, state null.
 * - The row sits at the try in a try-ending state (TRY_ENDING_STATES): finished, that state.
 * - The row sits at the try with state null and a history row for it: the try was cleared after
 *   it ended (clear_task_instances records the try, then sets the state to None; the next
 *   scheduling increments try_number): finished, the history's state.
 * - Otherwise (running, queued, scheduled, deferred, up_for_reschedule, restarting, null with no
 *   history, a state this code does not know): not finished, task_instance.state.
 */
function tryStatus(tryNumber: number, row: Row): AirflowTryStatus {
  const current = row.ti_try_number === null ? 0 : Number(row.ti_try_number);
  const state = row.ti_state === null ? null : String(row.ti_state);
  const recorded = row.h_try_number !== null && row.h_try_number !== undefined;
  const recordedState =
    row.h_state === null || row.h_state === undefined ? null : String(row.h_state);
  if (current > tryNumber) return { finished: true, state: recorded ? recordedState : null };
  if (current < tryNumber) return { finished: false, state: null };
  if (state !== null && TRY_ENDING_STATES.has(state)) return { finished: true, state };
  if (state === null && recorded) return { finished: true, state: recordedState };
  return { finished: false, state };
}
