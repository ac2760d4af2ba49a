import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import { BackendUnavailableError, InvalidInputError } from '../errors.js';
import { importOptional } from '../optional-import.js';
import type { Catalog } from './catalog.js';
import { migrateCatalog, newerSchemaError, schemaStatus } from './migrations.js';
import {
  type CatalogDatabase,
  catalogError,
  maskCatalogUrl,
  SqlCatalog,
  type SqlCatalogOptions,
} from './sql-catalog.js';

/** Options of `openCatalog`. */
export interface OpenCatalogOptions {
  /**
   * `auto` (the default for embedded SQLite) applies pending migrations at open; `never` refuses
   * a schema that is not current, for deployments that migrate explicitly (`tasklog db migrate`).
   * Either way a schema migrated by a newer tasklog is refused.
   *
   * A PostgreSQL catalog always behaves as `never`, even when `auto` is passed: several agents
   * and proxies share one database, possibly at different versions, and a schema change there is
   * an operator's decision (`tasklog db migrate`), not a side effect of whichever process starts
   * first.
   */
  migrate?: 'auto' | 'never';
}

const MEMORY_URL = 'sqlite::memory:';
const SQLITE_PREFIX = 'sqlite://';
const POSTGRES_URL = /^postgres(ql)?:\/\//i;
/** How long a PostgreSQL connection attempt may take before the operation fails. */
const POSTGRES_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Opens the catalog at `url`: `sqlite:///abs/path/catalog.db` (parent folders are created),
 * `sqlite::memory:`, or `postgres://user:password@host:port/database` (also `postgresql://`;
 * libpq-style query parameters such as `sslmode` are passed to node-postgres). Throws
 * InvalidInputError for a URL it cannot serve and BackendUnavailableError when the database
 * cannot be opened, its schema is not migrated (with `migrate: 'never'`, and always on
 * PostgreSQL) or was migrated by a newer tasklog.
 */
export async function openCatalog(url: string, options: OpenCatalogOptions = {}): Promise<Catalog> {
  const masked = maskCatalogUrl(url);
  const postgres = POSTGRES_URL.test(url);
  const migrate = postgres ? 'never' : (options.migrate ?? 'auto');
  const db = await openDatabase(url, masked);
  try {
    const status = await wrap(masked, 'read schema status', () => schemaStatus(db));
    if (status.unknown.length > 0) throw newerSchemaError(status.unknown, masked);
    if (status.pending.length > 0) {
      if (migrate === 'never') {
        throw new BackendUnavailableError(
          `catalog schema is not migrated (pending: ${status.pending.join(', ')}); run: tasklog db migrate (catalog ${masked})`,
        );
      }
      await wrap(masked, 'migrate', () => migrateCatalog(db));
    }
  } catch (err) {
    await db.destroy().catch(() => undefined);
    throw err;
  }
  const catalogOptions: SqlCatalogOptions = postgres
    ? { keyCollation: 'C', grantPatterns: 'like' }
    : {};
  return new SqlCatalog(db, url, catalogOptions);
}

/**
 * Applies every pending migration to the catalog at `url` (for `tasklog db migrate`). Safe to run
 * from several processes at once: on PostgreSQL kysely's Migrator holds a session advisory lock
 * while it migrates, in one transaction, so the others wait and then find nothing pending.
 */
export async function migrateCatalogUrl(url: string): Promise<{ applied: string[] }> {
  const masked = maskCatalogUrl(url);
  const db = await openDatabase(url, masked);
  try {
    const status = await wrap(masked, 'read schema status', () => schemaStatus(db));
    if (status.unknown.length > 0) throw newerSchemaError(status.unknown, masked);
    return await wrap(masked, 'migrate', () => migrateCatalog(db));
  } finally {
    await db.destroy().catch(() => undefined);
  }
}

async function openDatabase(url: string, masked: string): Promise<Kysely<CatalogDatabase>> {
  if (POSTGRES_URL.test(url)) return openPostgres(url, masked);
  const path = sqlitePath(url, masked);
  const sqlite = await openSqlite(path, masked);
  return new Kysely<CatalogDatabase>({ dialect: new SqliteDialect({ database: sqlite }) });
}

function sqlitePath(url: string, masked: string): string {
  if (url === MEMORY_URL) return ':memory:';
  const expected = `expected ${SQLITE_PREFIX}/absolute/path/catalog.db or ${MEMORY_URL}`;
  if (!url.startsWith(SQLITE_PREFIX)) {
    throw new InvalidInputError(`unsupported catalog URL ${masked}: ${expected}`);
  }
  try {
    // Reuse file: URL rules: percent-decoding, and a host (a relative path) is refused.
    const file = new URL(`file://${url.slice(SQLITE_PREFIX.length)}`);
    if (file.search !== '' || file.hash !== '') throw new Error('query and fragment are not used');
    return fileURLToPath(file);
  } catch (err) {
    throw new InvalidInputError(`invalid catalog URL ${masked}: ${expected}`, { cause: err });
  }
}

async function openSqlite(path: string, masked: string): Promise<BetterSqlite3.Database> {
  // Imported lazily: a native module, and only the SQLite catalog needs it.
  const { default: Database } = await importOptional(
    'better-sqlite3',
    'the SQLite catalog',
    () => import('better-sqlite3'),
  );
  if (path !== ':memory:') {
    await wrap(masked, 'create folder', () => mkdir(dirname(path), { recursive: true }));
  }
  return wrap(masked, 'open', async () => {
    const sqlite = new Database(path);
    try {
      // busy_timeout first: switching to WAL needs a lock another process may hold briefly.
      sqlite.pragma('busy_timeout = 5000');
      // WAL lets the proxy read while an agent writes; NORMAL is durable across process crashes
      // in WAL mode (only a power loss may drop the last commits).
      sqlite.pragma('journal_mode = WAL');
      sqlite.pragma('synchronous = NORMAL');
      sqlite.pragma('foreign_keys = ON');
      return sqlite;
    } catch (err) {
      sqlite.close();
      throw err;
    }
  });
}

async function openPostgres(url: string, masked: string): Promise<Kysely<CatalogDatabase>> {
  try {
    new URL(url);
  } catch {
    // No cause on purpose: Node's URL TypeError keeps the raw URL, password included, as `input`.
    throw new InvalidInputError(
      `invalid catalog URL ${masked}: expected postgres://user:password@host:port/database`,
    );
  }
  // Imported lazily: only PostgreSQL catalogs need node-postgres.
  const { default: pg } = await importOptional('pg', 'the PostgreSQL catalog', () => import('pg'));
  const pool = new pg.Pool({
    connectionString: url,
    connectionTimeoutMillis: POSTGRES_CONNECT_TIMEOUT_MS,
  });
  // An idle pooled connection that the server drops emits 'error' on the pool; unhandled, that
  // would crash the process. The next query opens a new connection or fails, and reports there.
  pool.on('error', () => undefined);
  return new Kysely<CatalogDatabase>({ dialect: new PostgresDialect({ pool }) });
}

async function wrap<T>(masked: string, operation: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw catalogError(masked, operation, err);
  }
}
