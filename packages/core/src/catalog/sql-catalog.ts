import { type ColumnType, type Kysely, type Selectable, sql } from 'kysely';
import { type AttemptKey, attemptKey } from '../attempt-key.js';
import { BackendUnavailableError, InvalidInputError, isTasklogError } from '../errors.js';
import type { AttemptFilter } from '../path-template.js';
import { maskUrlPasswords } from '../redact.js';
import type {
  AttemptPatch,
  AttemptRecord,
  AttemptState,
  Catalog,
  CatalogDeleteOptions,
  CatalogListOptions,
  FinishedPage,
  FinishedQuery,
  GroupLevel,
  GroupPage,
  GroupQuery,
  GroupsOf,
} from './catalog.js';
import { queryFinished } from './catalog-finished.js';
import { type GroupsDialect, queryGroups } from './catalog-groups.js';

/** The `attempts` table as migrations 0001_attempts and 0002_outcome create it. */
export interface AttemptsTable {
  dag_id: string;
  run_id: string;
  task_id: string;
  map_index: number;
  try_number: number;
  relative_path: string;
  state: AttemptState;
  // node-postgres returns bigint as a string (it may exceed 2^53); better-sqlite3 as a number.
  size: ColumnType<number | string | bigint | null, number | null, number | null>;
  sha256: string | null;
  store_url: string | null;
  agent_url: string | null;
  /** ISO-8601 UTC with milliseconds, e.g. `2024-01-01T00:00:00.000Z`. */
  created_at: string;
  updated_at: string;
  shipped_at: string | null;
  heartbeat_at: string | null;
  airflow_state: string | null;
  exit_code: number | null;
}

/** The catalog's tables, for `Kysely<CatalogDatabase>`. */
export interface CatalogDatabase {
  attempts: AttemptsTable;
}

const STATES: readonly AttemptState[] = ['running', 'shipping', 'shipped', 'failed', 'abandoned'];
const DEFAULT_LIST_LIMIT = 1000;

export interface SqlCatalogOptions {
  /**
   * Collation `list()` orders the text key columns by; default: the column's own. PostgreSQL
   * passes `C` so the order is byte order, as SQLite's BINARY collation gives, whatever locale
   * the database was created with.
   */
  keyCollation?: string;
  /** How DAG grant patterns are matched in `groups()`: `glob` (SQLite, the default) or `like`. */
  grantPatterns?: GroupsDialect['patterns'];
}

/**
 * The SQL catalog of attempts over any kysely dialect. Nothing here is SQLite-specific:
 * timestamps are ISO text, sizes bigint, and upsert is `insert ... on conflict do update`,
 * which SQLite (3.24+) and PostgreSQL (9.5+) both speak. Open one with `openCatalog(url)`.
 *
 * Errors: InvalidInputError for a bad key, patch, filter or limit; BackendUnavailableError (with
 * the driver's error as cause, naming the catalog URL and the operation) for any database error.
 */
export class SqlCatalog implements Catalog {
  /** The catalog URL with any password masked. */
  readonly url: string;
  readonly #keyCollation: string | undefined;
  readonly #groupsDialect: GroupsDialect;
  #closed = false;

  constructor(
    /** The kysely instance this catalog owns; `close()` destroys it. */
    readonly db: Kysely<CatalogDatabase>,
    url: string,
    options: SqlCatalogOptions = {},
  ) {
    this.url = maskCatalogUrl(url);
    this.#keyCollation = options.keyCollation;
    this.#groupsDialect = {
      patterns: options.grantPatterns ?? 'glob',
      keyCollation: options.keyCollation,
    };
  }

  async upsert(
    key: AttemptKey,
    patch: AttemptPatch & { relativePath: string },
  ): Promise<AttemptRecord> {
    const k = attemptKey(key);
    if (typeof patch.relativePath !== 'string' || patch.relativePath.length === 0) {
      throw new InvalidInputError('relativePath must be a non-empty string');
    }
    const changes = patchToRow(patch);
    const now = new Date().toISOString();
    const row = await this.#run('upsert', () =>
      this.db
        .insertInto('attempts')
        .values({
          dag_id: k.dagId,
          run_id: k.runId,
          task_id: k.taskId,
          map_index: k.mapIndex,
          try_number: k.tryNumber,
          relative_path: patch.relativePath,
          state: 'running',
          size: null,
          sha256: null,
          store_url: null,
          agent_url: null,
          shipped_at: null,
          heartbeat_at: null,
          airflow_state: null,
          exit_code: null,
          ...changes,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) =>
          oc
            .columns(['dag_id', 'run_id', 'task_id', 'map_index', 'try_number'])
            .doUpdateSet({ ...changes, updated_at: now }),
        )
        .returningAll()
        .executeTakeFirstOrThrow(),
    );
    return rowToRecord(row);
  }

  async get(key: AttemptKey): Promise<AttemptRecord | undefined> {
    const k = attemptKey(key);
    const row = await this.#run('get', () =>
      this.db
        .selectFrom('attempts')
        .selectAll()
        .where('dag_id', '=', k.dagId)
        .where('run_id', '=', k.runId)
        .where('task_id', '=', k.taskId)
        .where('map_index', '=', k.mapIndex)
        .where('try_number', '=', k.tryNumber)
        .executeTakeFirst(),
    );
    return row === undefined ? undefined : rowToRecord(row);
  }

  async list(filter: AttemptFilter, options: CatalogListOptions = {}): Promise<AttemptRecord[]> {
    const limit = options.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new InvalidInputError(`limit must be a positive integer, got ${String(limit)}`);
    }
    let query = this.db.selectFrom('attempts').selectAll();
    if (filter.dagId !== undefined) query = query.where('dag_id', '=', filter.dagId);
    if (filter.runId !== undefined) query = query.where('run_id', '=', filter.runId);
    if (filter.taskId !== undefined) query = query.where('task_id', '=', filter.taskId);
    if (filter.mapIndex !== undefined) query = query.where('map_index', '=', filter.mapIndex);
    if (filter.tryNumber !== undefined) query = query.where('try_number', '=', filter.tryNumber);
    const collation = this.#keyCollation;
    const text = (column: 'dag_id' | 'run_id' | 'task_id') =>
      collation === undefined
        ? sql.ref(column)
        : sql`${sql.ref(column)} collate ${sql.id(collation)}`;
    const ordered = query
      .orderBy(text('dag_id'))
      .orderBy(text('run_id'))
      .orderBy(text('task_id'))
      .orderBy('map_index')
      .orderBy('try_number')
      .limit(limit);
    const rows = await this.#run('list', () => ordered.execute());
    return rows.map(rowToRecord);
  }

  async latestTry(filter: {
    dagId: string;
    runId: string;
    taskId: string;
    mapIndex: number;
  }): Promise<number | undefined> {
    const row = await this.#run('latestTry', () =>
      this.db
        .selectFrom('attempts')
        .select((eb) => eb.fn.max('try_number').as('latest'))
        .where('dag_id', '=', filter.dagId)
        .where('run_id', '=', filter.runId)
        .where('task_id', '=', filter.taskId)
        .where('map_index', '=', filter.mapIndex)
        .executeTakeFirst(),
    );
    const latest = row?.latest;
    return latest === null || latest === undefined ? undefined : Number(latest);
  }

  async groups<L extends GroupLevel>(
    level: L,
    query: GroupQuery = {},
  ): Promise<GroupPage<GroupsOf[L]>> {
    return this.#run('groups', () => queryGroups(this.db, level, query, this.#groupsDialect));
  }

  async listFinished(query: FinishedQuery): Promise<FinishedPage> {
    const { rows, last } = await this.#run('listFinished', () =>
      queryFinished(this.db, query, this.#groupsDialect),
    );
    const records = rows.map(rowToRecord);
    const end = records.at(-1);
    return {
      records,
      next: last || end === undefined ? null : { updatedAt: end.updatedAt, key: end.key },
    };
  }

  async delete(
    key: AttemptKey,
    options: CatalogDeleteOptions = {},
  ): Promise<AttemptRecord | undefined> {
    const k = attemptKey(key);
    let query = this.db
      .deleteFrom('attempts')
      .where('dag_id', '=', k.dagId)
      .where('run_id', '=', k.runId)
      .where('task_id', '=', k.taskId)
      .where('map_index', '=', k.mapIndex)
      .where('try_number', '=', k.tryNumber);
    if (options.states !== undefined) {
      for (const state of options.states) checkState(state);
      // An empty list matches nothing: `in ()` is not valid SQL.
      query =
        options.states.length === 0
          ? query.where(sql<boolean>`1 = 0`)
          : query.where('state', 'in', options.states);
    }
    if (options.olderThan !== undefined) {
      query = query.where('updated_at', '<', timestamp('olderThan', options.olderThan) as string);
    }
    const row = await this.#run('delete', () => query.returningAll().executeTakeFirst());
    return row === undefined ? undefined : rowToRecord(row);
  }

  async abandonIfStale(key: AttemptKey, heartbeatBefore: Date): Promise<AttemptRecord | undefined> {
    const k = attemptKey(key);
    const before = timestamp('heartbeatBefore', heartbeatBefore);
    const row = await this.#run('abandonIfStale', () =>
      this.db
        .updateTable('attempts')
        .set({ state: 'abandoned', updated_at: new Date().toISOString() })
        .where('dag_id', '=', k.dagId)
        .where('run_id', '=', k.runId)
        .where('task_id', '=', k.taskId)
        .where('map_index', '=', k.mapIndex)
        .where('try_number', '=', k.tryNumber)
        .where('state', '=', 'running')
        // ISO-8601 UTC text compares chronologically.
        .where((eb) => eb.or([eb('heartbeat_at', 'is', null), eb('heartbeat_at', '<', before)]))
        .returningAll()
        .executeTakeFirst(),
    );
    return row === undefined ? undefined : rowToRecord(row);
  }

  async ping(): Promise<void> {
    await this.#run('ping', () => this.db.selectNoFrom((eb) => eb.lit(1).as('one')).execute());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#run('close', () => this.db.destroy());
  }

  async #run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw catalogError(this.url, operation, err);
    }
  }
}

/** Wraps a driver error as BackendUnavailableError naming the (masked) catalog URL. */
export function catalogError(url: string, operation: string, err: unknown): Error {
  if (isTasklogError(err)) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new BackendUnavailableError(`catalog ${url}: ${operation} failed: ${detail}`, {
    cause: err,
  });
}

/** Replaces the password in a catalog URL (`postgres://user:secret@host/db`) with `***`. */
export function maskCatalogUrl(url: string): string {
  return maskUrlPasswords(url);
}

type AttemptRow = Selectable<AttemptsTable>;
type RowChanges = Partial<
  Pick<
    AttemptsTable,
    | 'relative_path'
    | 'state'
    | 'sha256'
    | 'store_url'
    | 'agent_url'
    | 'shipped_at'
    | 'heartbeat_at'
    | 'airflow_state'
    | 'exit_code'
  > & { size: number | null }
>;

/** The columns the patch sets; omitted fields are left out so an update keeps their value. */
function patchToRow(patch: AttemptPatch): RowChanges {
  const row: RowChanges = {};
  if (patch.relativePath !== undefined) row.relative_path = patch.relativePath;
  if (patch.state !== undefined) row.state = checkState(patch.state);
  if (patch.size !== undefined) {
    if (patch.size !== null && (!Number.isSafeInteger(patch.size) || patch.size < 0)) {
      throw new InvalidInputError(
        `size must be a non-negative integer or null, got ${String(patch.size)}`,
      );
    }
    row.size = patch.size;
  }
  if (patch.sha256 !== undefined) {
    if (patch.sha256 !== null && !/^[0-9a-f]{64}$/.test(patch.sha256)) {
      throw new InvalidInputError('sha256 must be 64 lower-case hex characters or null');
    }
    row.sha256 = patch.sha256;
  }
  if (patch.storeUrl !== undefined) row.store_url = patch.storeUrl;
  if (patch.agentUrl !== undefined) row.agent_url = patch.agentUrl;
  if (patch.shippedAt !== undefined) row.shipped_at = timestamp('shippedAt', patch.shippedAt);
  if (patch.heartbeatAt !== undefined) {
    row.heartbeat_at = timestamp('heartbeatAt', patch.heartbeatAt);
  }
  if (patch.airflowState !== undefined) row.airflow_state = patch.airflowState;
  if (patch.exitCode !== undefined) {
    if (patch.exitCode !== null && !Number.isSafeInteger(patch.exitCode)) {
      throw new InvalidInputError(
        `exitCode must be an integer or null, got ${String(patch.exitCode)}`,
      );
    }
    row.exit_code = patch.exitCode;
  }
  return row;
}

function checkState(state: AttemptState): AttemptState {
  if (!STATES.includes(state)) {
    throw new InvalidInputError(`state must be one of ${STATES.join(', ')}, got ${String(state)}`);
  }
  return state;
}

function timestamp(field: string, value: Date | null): string | null {
  if (value === null) return null;
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new InvalidInputError(`${field} must be a valid Date or null`);
  }
  return value.toISOString();
}

function rowToRecord(row: AttemptRow): AttemptRecord {
  return {
    // Rows were validated on the way in; re-validating here would turn one odd row into a
    // failed listing.
    key: Object.freeze({
      dagId: row.dag_id,
      runId: row.run_id,
      taskId: row.task_id,
      mapIndex: Number(row.map_index),
      tryNumber: Number(row.try_number),
    }),
    relativePath: row.relative_path,
    state: row.state,
    size: row.size === null ? null : Number(row.size),
    sha256: row.sha256,
    storeUrl: row.store_url,
    agentUrl: row.agent_url,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    shippedAt: row.shipped_at === null ? null : new Date(row.shipped_at),
    heartbeatAt: row.heartbeat_at === null ? null : new Date(row.heartbeat_at),
    airflowState: row.airflow_state ?? null,
    exitCode: row.exit_code === null || row.exit_code === undefined ? null : Number(row.exit_code),
  };
}
