import { resolve } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type pg from 'pg';
import {
  AbortedError,
  BackendUnavailableError,
  InvalidInputError,
  isTasklogError,
} from '../errors.js';
import { maskUrlPasswords } from '../redact.js';

/** One result row: column name to value, as the driver returns it. */
export type Row = Record<string, unknown>;

/**
 * A read-only connection to Airflow's metadata database, PostgreSQL or SQLite. What the reader in
 * airflow-db.ts needs and no more: placeholders, queries, the columns of a table.
 *
 * Every method throws BackendUnavailableError (the driver's error as cause, the masked URL in the
 * message) when the database fails, and AbortedError when `signal` aborts.
 */
export interface AirflowConnection {
  /** The URL with any password replaced by `***`. */
  readonly url: string;
  /** Which SQL the connection speaks, for the few statements that differ. */
  readonly dialect: 'postgres' | 'sqlite';
  /** The placeholder of the n-th parameter (1-based): `$n` or `?`. */
  placeholder(n: number): string;
  query(sql: string, params: readonly unknown[], signal?: AbortSignal): Promise<Row[]>;
  /** The column names of `table`, or undefined when the database has no such table. */
  columns(table: string, signal?: AbortSignal): Promise<string[] | undefined>;
  close(): Promise<void>;
}

/** The PostgreSQL pool's size: the agent asks a few questions a minute, never many at once. */
const POSTGRES_POOL_SIZE = 2;
const POSTGRES_CONNECT_TIMEOUT_MS = 10_000;
/** Server-side limit on each statement; a batch of 500 keys takes milliseconds. */
const STATEMENT_TIMEOUT_MS = 10_000;
/** Client-side limit, for a server that stops answering altogether (a network partition). */
const QUERY_TIMEOUT_MS = STATEMENT_TIMEOUT_MS + 5_000;
/**
 * How long SQLite waits for a writer's lock. better-sqlite3 waits synchronously, stalling the
 * agent's event loop, so briefly: Airflow's writes are short, and a busy database is reported as
 * BackendUnavailableError, to be asked again at the next poll.
 */
const SQLITE_BUSY_TIMEOUT_MS = 1_000;
const APPLICATION_NAME = 'tasklog-agent';

const POSTGRES_URL = /^postgres(?:ql)?(?:\+[a-z0-9_]+)?:\/\//i;
const SQLITE_URL = /^sqlite(?:\+[a-z0-9_]+)?:\/\//i;
const EXPECTED =
  "expected Airflow's sql_alchemy_conn: postgresql://user:password@host:5432/airflow, postgresql+psycopg2://…, sqlite:////absolute/path/airflow.db or sqlite:///relative/path.db";

/**
 * Opens a read-only connection for Airflow's `sql_alchemy_conn`. Throws InvalidInputError for a
 * URL it cannot serve (MySQL, an in-memory SQLite, a malformed URL) and BackendUnavailableError
 * when a SQLite file cannot be opened; a PostgreSQL server is first reached by the first query.
 */
export async function connectAirflowDb(url: string): Promise<AirflowConnection> {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new InvalidInputError(`Airflow database URL is empty: ${EXPECTED}`);
  }
  const masked = maskDbUrl(url);
  if (POSTGRES_URL.test(url)) return openPostgres(url, masked);
  if (SQLITE_URL.test(url)) return openSqlite(sqlitePath(url, masked), masked);
  throw new InvalidInputError(
    `unsupported Airflow database URL ${masked}: ${EXPECTED} (tasklog reads PostgreSQL and SQLite metadata databases)`,
  );
}

/**
 * Replaces the password of a URL with `***`. Everything up to the last `@` is taken as user
 * information, so a password holding an unescaped `@`, `/` or `?` is masked too (at worst, an `@`
 * in the query masks more than the password).
 */
function maskDbUrl(url: string): string {
  return maskUrlPasswords(url);
}

/**
 * SQLAlchemy's SQLite URLs: `sqlite:////abs/path.db` (four slashes: absolute) and
 * `sqlite:///relative/path.db` (relative to the working directory). A query (`?timeout=…`) is
 * SQLAlchemy's connect arguments, not part of the path.
 */
function sqlitePath(url: string, masked: string): string {
  const rest = url.slice(url.indexOf('://') + 3).split('?')[0]!;
  if (rest === '' || rest === '/' || rest === '/:memory:') {
    throw new InvalidInputError(
      `SQLite URL ${masked} names an in-memory database, which cannot be Airflow's: ${EXPECTED}`,
    );
  }
  if (!rest.startsWith('/')) {
    throw new InvalidInputError(`invalid SQLite URL ${masked}: ${EXPECTED}`);
  }
  return resolve(rest.slice(1));
}

async function openSqlite(path: string, masked: string): Promise<AirflowConnection> {
  // Imported lazily: a native module, and only SQLite metadata databases need it.
  const { default: Database } = await failAs(
    masked,
    'load better-sqlite3',
    () => import('better-sqlite3'),
  );
  let db: BetterSqlite3.Database;
  try {
    db = new Database(path, {
      readonly: true,
      fileMustExist: true,
      timeout: SQLITE_BUSY_TIMEOUT_MS,
    });
  } catch (err) {
    throw sqliteOpenError(path, masked, err);
  }
  return new SqliteConnection(db, masked);
}

function sqliteOpenError(path: string, masked: string, err: unknown): Error {
  const code = (err as { code?: unknown }).code;
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_NOTADB') {
    return new InvalidInputError(
      `${path} (from ${masked}) is not a SQLite database: point sql_alchemy_conn at Airflow's metadata database`,
      { cause: err },
    );
  }
  return new BackendUnavailableError(
    `cannot open Airflow's SQLite database ${path} (from ${masked}) read-only: ${detail}; check that the file exists and is readable by this user`,
    { cause: err },
  );
}

class SqliteConnection implements AirflowConnection {
  readonly dialect = 'sqlite';
  #closed = false;

  constructor(
    readonly db: BetterSqlite3.Database,
    readonly url: string,
  ) {}

  placeholder(): string {
    return '?';
  }

  // better-sqlite3 runs a statement synchronously and cannot interrupt it: the signal is checked
  // before and after; a batch of keys takes milliseconds.
  async query(sql: string, params: readonly unknown[], signal?: AbortSignal): Promise<Row[]> {
    throwIfAborted(signal, this.url);
    const rows = this.#run('query', () => this.db.prepare(sql).all(...params) as Row[]);
    throwIfAborted(signal, this.url);
    return rows;
  }

  async columns(table: string, signal?: AbortSignal): Promise<string[] | undefined> {
    const rows = await this.query('SELECT name FROM pragma_table_info(?)', [table], signal);
    return rows.length === 0 ? undefined : rows.map((r) => String(r.name));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#run('close', () => this.db.close());
    this.#closed = true;
  }

  #run<T>(operation: string, fn: () => T): T {
    if (this.#closed) throw closedError(this.url);
    try {
      return fn();
    } catch (err) {
      throw dbError(this.url, operation, err);
    }
  }
}

async function openPostgres(url: string, masked: string): Promise<AirflowConnection> {
  const { connectionString, options } = postgresConnection(url, masked);
  // Imported lazily: only PostgreSQL metadata databases need node-postgres.
  const { default: pgModule } = await failAs(masked, 'load pg', () => import('pg'));
  const pool = new pgModule.Pool({
    connectionString,
    max: POSTGRES_POOL_SIZE,
    application_name: APPLICATION_NAME,
    // Startup options, so every session the pool opens is read-only and bounded from its first
    // statement, with no extra round trip. A connection string's own `options` (a search_path,
    // say) are kept, ours last so they win.
    options: [
      options,
      '-c default_transaction_read_only=on',
      `-c statement_timeout=${STATEMENT_TIMEOUT_MS}`,
    ]
      .filter((o) => o !== undefined && o.trim() !== '')
      .join(' '),
    connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    keepAlive: true,
    idleTimeoutMillis: 30_000,
    allowExitOnIdle: true,
  });
  // An idle pooled connection that the server drops emits 'error' on the pool; unhandled, that
  // would crash the agent. The next query opens a new connection or fails, and reports there.
  pool.on('error', () => undefined);
  return new PostgresConnection(pool, masked);
}

/**
 * node-postgres speaks `postgres://`; SQLAlchemy adds a driver (`postgresql+psycopg2://`). Query
 * parameters such as `sslmode` or `host=/run/postgresql` pass through; `options` and
 * `application_name` are taken out, because node-postgres lets the connection string override
 * the pool's own settings, and ours must hold.
 */
function postgresConnection(
  url: string,
  masked: string,
): { connectionString: string; options: string | undefined } {
  const rest = url.slice(url.indexOf('://') + 3);
  const queryStart = rest.indexOf('?');
  const base = queryStart < 0 ? rest : rest.slice(0, queryStart);
  const params = new URLSearchParams(queryStart < 0 ? '' : rest.slice(queryStart + 1));
  const options = params.get('options') ?? undefined;
  params.delete('options');
  params.delete('application_name');
  const query = params.toString();
  const connectionString = `postgres://${base}${query === '' ? '' : `?${query}`}`;
  try {
    // node-postgres tolerates an empty host (`user@/db?host=/run/postgresql`); so does this check.
    new URL(connectionString.replace('@/', '@localhost/'));
  } catch {
    // No cause on purpose: Node's URL TypeError keeps the raw URL, password included, as `input`.
    throw new InvalidInputError(`invalid Airflow database URL ${masked}: ${EXPECTED}`);
  }
  return { connectionString, options };
}

class PostgresConnection implements AirflowConnection {
  readonly dialect = 'postgres';
  #closed = false;

  constructor(
    readonly pool: pg.Pool,
    readonly url: string,
  ) {}

  placeholder(n: number): string {
    return `$${n}`;
  }

  /**
   * node-postgres takes no AbortSignal. On abort the caller gets AbortedError at once and the
   * connection is destroyed rather than returned to the pool; the server ends the statement when
   * it sees the connection gone, or at the statement timeout.
   */
  async query(sql: string, params: readonly unknown[], signal?: AbortSignal): Promise<Row[]> {
    if (this.#closed) throw closedError(this.url);
    throwIfAborted(signal, this.url);
    const client = await this.#wrap('connect', () =>
      untilAborted(this.pool.connect(), signal, this.url, (late) => late.release()),
    );
    let destroy = false;
    try {
      const result = await this.#wrap('query', () =>
        untilAborted(client.query({ text: sql, values: [...params] }), signal, this.url, () => {}),
      );
      throwIfAborted(signal, this.url);
      return result.rows as Row[];
    } catch (err) {
      // A statement the server refused leaves the connection usable; an abort, a broken socket or
      // a client-side timeout may not.
      destroy = !serverReported(err);
      throw err;
    } finally {
      client.release(destroy);
    }
  }

  async columns(table: string, signal?: AbortSignal): Promise<string[] | undefined> {
    // to_regclass resolves the name through the search_path, as the reader's queries will.
    const rows = await this.query(
      `SELECT a.attname AS name FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
      [table],
      signal,
    );
    return rows.length === 0 ? undefined : rows.map((r) => String(r.name));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#wrap('close', () => this.pool.end());
  }

  async #wrap<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw dbError(this.url, operation, err);
    }
  }
}

/** Whether the server answered with an error (a SQLSTATE), as opposed to the connection failing. */
function serverReported(err: unknown): boolean {
  const code = (err as { cause?: { code?: unknown } }).cause?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

/**
 * Settles with `promise`, or rejects with AbortedError as soon as `signal` aborts; a value that
 * arrives after the abort goes to `late` (to release it), a late failure is dropped.
 */
function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  url: string,
  late: (value: T) => void,
): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolvePromise, reject) => {
    let settled = false;
    const onAbort = () => {
      settled = true;
      reject(abortedError(signal, url));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) late(value);
        else resolvePromise(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (!settled) reject(err);
      },
    );
    if (signal.aborted) onAbort();
  });
}

export function throwIfAborted(signal: AbortSignal | undefined, url: string): void {
  if (signal?.aborted) throw abortedError(signal, url);
}

function abortedError(signal: AbortSignal, url: string): AbortedError {
  return new AbortedError(`Airflow database query aborted (${url})`, { cause: signal.reason });
}

function closedError(url: string): BackendUnavailableError {
  return new BackendUnavailableError(`Airflow database ${url} is closed`);
}

/** Wraps a driver error as BackendUnavailableError naming the (masked) URL and the operation. */
function dbError(url: string, operation: string, err: unknown): Error {
  if (isTasklogError(err)) return err;
  const detail = err instanceof Error && err.message !== '' ? err.message : String(err);
  const code = (err as { code?: unknown }).code;
  const hint =
    code === '57014'
      ? ` (statement timeout of ${STATEMENT_TIMEOUT_MS / 1000} s)`
      : code === '28P01' || code === '28000'
        ? ': check the user and password in sql_alchemy_conn'
        : '';
  return new BackendUnavailableError(
    `Airflow database ${url}: ${operation} failed: ${detail}${hint}`,
    { cause: err },
  );
}

async function failAs<T>(url: string, operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw dbError(url, operation, err);
  }
}
