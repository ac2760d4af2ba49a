import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import { BackendUnavailableError } from '../errors.js';

// Migrations must not depend on today's table types: they describe the schema as it was when
// each one was written, so they take an untyped Kysely.
// biome-ignore lint/suspicious/noExplicitAny: kysely's Migration contract is typed Kysely<any>
type AnyDb = Kysely<any>;

/** kysely's default bookkeeping table; named here so schemaStatus can read it without writing. */
const MIGRATION_TABLE = 'kysely_migration';

/**
 * Every schema change, in order. Names sort alphabetically in the order they apply (kysely's
 * Migrator requires it). Only kysely's schema builder is used, so the same steps run on SQLite
 * and PostgreSQL. `ifNotExists` matters on SQLite: kysely runs SQLite migrations outside a
 * transaction, so a crash between two statements must leave a state the next run can finish.
 */
const MIGRATIONS: Record<string, Migration> = {
  '0001_attempts': {
    async up(db: AnyDb) {
      await db.schema
        .createTable('attempts')
        .ifNotExists()
        .addColumn('dag_id', 'text', (c) => c.notNull())
        .addColumn('run_id', 'text', (c) => c.notNull())
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('map_index', 'integer', (c) => c.notNull())
        .addColumn('try_number', 'integer', (c) => c.notNull())
        .addColumn('relative_path', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        // bigint: a log may exceed 2^31 bytes; PostgreSQL's integer would overflow.
        .addColumn('size', 'bigint')
        .addColumn('sha256', 'text')
        .addColumn('store_url', 'text')
        .addColumn('agent_url', 'text')
        // ISO-8601 UTC text with milliseconds: one representation SQLite (no date type) and
        // PostgreSQL read back identically, and it sorts chronologically as text.
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('shipped_at', 'text')
        .addColumn('heartbeat_at', 'text')
        .addPrimaryKeyConstraint('attempts_pkey', [
          'dag_id',
          'run_id',
          'task_id',
          'map_index',
          'try_number',
        ])
        .addCheckConstraint(
          'attempts_state_check',
          sql`state in ('running', 'shipping', 'shipped', 'failed', 'abandoned')`,
        )
        .execute();
      await db.schema
        .createIndex('attempts_task_instance_idx')
        .ifNotExists()
        .on('attempts')
        .columns(['dag_id', 'run_id', 'task_id'])
        .execute();
    },
    async down(db: AnyDb) {
      await db.schema.dropTable('attempts').ifExists().execute();
    },
  },
  '0002_outcome': {
    // How an attempt ended, where known: Airflow's state of the try (read from Airflow's metadata
    // database by an agent with `completion = "airflow-db"`) and the task's exit code (from the
    // completion marker `tasklog run` writes).
    async up(db: AnyDb) {
      const columns = (await db.introspection.getTables()).find(
        (t) => t.name === 'attempts',
      )?.columns;
      // Per column and checked first: SQLite runs migrations outside a transaction, so a crash
      // between the two statements must leave a state the next run can finish.
      if (!columns?.some((c) => c.name === 'airflow_state')) {
        await db.schema.alterTable('attempts').addColumn('airflow_state', 'text').execute();
      }
      if (!columns?.some((c) => c.name === 'exit_code')) {
        await db.schema.alterTable('attempts').addColumn('exit_code', 'integer').execute();
      }
    },
    async down(db: AnyDb) {
      await db.schema.alterTable('attempts').dropColumn('exit_code').execute();
      await db.schema.alterTable('attempts').dropColumn('airflow_state').execute();
    },
  },
};

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

const KNOWN = Object.keys(MIGRATIONS).sort();

/** Names of the migrations this build knows, in the order they apply. */
export const catalogMigrations: readonly string[] = Object.freeze([...KNOWN]);

export interface SchemaStatus {
  /** The last applied migration, or undefined for an empty database. */
  current: string | undefined;
  /** The last migration this build knows. */
  latest: string;
  /** Migrations this build knows that the database has not applied yet. */
  pending: string[];
  /** Applied migrations this build does not know: the database was migrated by a newer tasklog. */
  unknown: string[];
}

/**
 * Reads which migrations the database has applied, without creating or changing anything (so it
 * is safe on a catalog opened with `migrate: 'never'`). Database errors propagate as they are;
 * callers wrap them with the catalog URL.
 */
export async function schemaStatus<DB>(db: Kysely<DB>): Promise<SchemaStatus> {
  const anyDb = db as unknown as AnyDb;
  const tables = await anyDb.introspection.getTables({ withInternalKyselyTables: true });
  const applied = tables.some((t) => t.name === MIGRATION_TABLE)
    ? (await anyDb.selectFrom(MIGRATION_TABLE).select('name').execute())
        .map((r: { name: string }) => r.name)
        .sort()
    : [];
  return {
    current: applied.at(-1),
    latest: KNOWN.at(-1)!,
    pending: KNOWN.filter((name) => !applied.includes(name)),
    unknown: applied.filter((name) => !KNOWN.includes(name)),
  };
}

/**
 * Applies every pending migration and returns the names applied (empty when already current).
 * Throws BackendUnavailableError when the database was migrated by a newer tasklog; other
 * database errors propagate as they are.
 */
export async function migrateCatalog<DB>(db: Kysely<DB>): Promise<{ applied: string[] }> {
  const before = await schemaStatus(db);
  if (before.unknown.length > 0) throw newerSchemaError(before.unknown);
  if (before.pending.length === 0) return { applied: [] };

  const migrator = new Migrator({ db: db as unknown as AnyDb, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    // Two processes may migrate one catalog at once (two agents starting together). The loser
    // fails recording a migration the winner already recorded; if the schema is now current,
    // that is success.
    const after = await schemaStatus(db).catch(() => undefined);
    if (after !== undefined && after.pending.length === 0 && after.unknown.length === 0) {
      return { applied: [] };
    }
    throw error;
  }
  return {
    applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName),
  };
}

/** The error for a catalog whose schema is newer than this build; `where` names the catalog. */
export function newerSchemaError(unknown: string[], where?: string): BackendUnavailableError {
  const at = where === undefined ? '' : ` ${where}`;
  return new BackendUnavailableError(
    `catalog${at} was migrated by a newer tasklog (unknown migrations: ${unknown.join(', ')}); upgrade tasklog`,
  );
}
