import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AttemptKey,
  attemptKey,
  BackendUnavailableError,
  type CatalogDatabase,
  InvalidInputError,
  migrateCatalog,
  migrateCatalogUrl,
  openCatalog,
  type SqlCatalog,
  SqlCatalog as SqlCatalogClass,
  schemaStatus,
} from '@tasklog/core';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

let dir: string;
const opened: Array<{ close(): Promise<void> }> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tasklog-catalog-'));
});

afterEach(async () => {
  for (const c of opened.splice(0)) await c.close();
  await rm(dir, { recursive: true, force: true });
});

const fileUrl = (name = 'catalog.db') => `sqlite://${join(dir, name)}`;

async function open(url = fileUrl(), migrate?: 'auto' | 'never'): Promise<SqlCatalog> {
  const catalog = await openCatalog(url, migrate === undefined ? {} : { migrate });
  opened.push(catalog);
  return catalog;
}

/** A raw kysely over the file, for checking the schema from outside the catalog. */
function rawKysely(path: string): Kysely<CatalogDatabase> {
  const db = new Kysely<CatalogDatabase>({
    dialect: new SqliteDialect({ database: new Database(path) }),
  });
  opened.push({ close: () => db.destroy() });
  return db;
}

function rawSqlite(path: string): Database.Database {
  const db = new Database(path);
  opened.push({ close: async () => void db.close() });
  return db;
}

const key = (over: Partial<AttemptKey> = {}): AttemptKey =>
  attemptKey({
    dagId: 'etl',
    runId: 'scheduled__2024-01-01T00:00:00+00:00',
    taskId: 'extract',
    mapIndex: -1,
    tryNumber: 1,
    ...over,
  });

describe('migrations', () => {
  it('migrating a new file creates the attempts table and reports the migration applied', async () => {
    const path = join(dir, 'catalog.db');
    expect(await migrateCatalogUrl(`sqlite://${path}`)).toEqual({ applied: ['0001_attempts'] });
    const tables = await rawKysely(path).introspection.getTables();
    const attempts = tables.find((t) => t.name === 'attempts');
    expect(attempts?.columns.map((c) => c.name)).toEqual([
      'dag_id',
      'run_id',
      'task_id',
      'map_index',
      'try_number',
      'relative_path',
      'state',
      'size',
      'sha256',
      'store_url',
      'agent_url',
      'created_at',
      'updated_at',
      'shipped_at',
      'heartbeat_at',
    ]);
  });

  it('migrating twice applies nothing the second time', async () => {
    await migrateCatalogUrl(fileUrl());
    expect(await migrateCatalogUrl(fileUrl())).toEqual({ applied: [] });
  });

  it('concurrent migrations of one new file all succeed and apply the migration once', async () => {
    const results = await Promise.all([1, 2, 3].map(() => migrateCatalogUrl(fileUrl())));
    expect(results.flatMap((r) => r.applied)).toEqual(['0001_attempts']);
  });

  it('migrate creates missing parent folders of the database file', async () => {
    const url = fileUrl('a/b/c/catalog.db');
    await migrateCatalogUrl(url);
    expect(existsSync(join(dir, 'a/b/c/catalog.db'))).toBe(true);
  });

  it('schemaStatus reports the migration pending before and current after migrating', async () => {
    const db = rawKysely(join(dir, 'catalog.db'));
    expect(await schemaStatus(db)).toEqual({
      current: undefined,
      latest: '0001_attempts',
      pending: ['0001_attempts'],
      unknown: [],
    });
    expect(await migrateCatalog(db)).toEqual({ applied: ['0001_attempts'] });
    expect(await schemaStatus(db)).toEqual({
      current: '0001_attempts',
      latest: '0001_attempts',
      pending: [],
      unknown: [],
    });
  });

  it('schemaStatus does not create anything in an empty database', async () => {
    const path = join(dir, 'catalog.db');
    const db = rawKysely(path);
    await schemaStatus(db);
    expect(await db.introspection.getTables({ withInternalKyselyTables: true })).toEqual([]);
  });
});

describe('openCatalog', () => {
  it("with migrate 'auto' a new file is migrated at open", async () => {
    const catalog = await open(fileUrl(), 'auto');
    expect(await catalog.get(key())).toBeUndefined();
  });

  it("with migrate 'never' an unmigrated file is refused, naming tasklog db migrate", async () => {
    const err = await openCatalog(fileUrl(), { migrate: 'never' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toContain(
      'catalog schema is not migrated (pending: 0001_attempts); run: tasklog db migrate',
    );
  });

  it("with migrate 'never' a migrated file opens", async () => {
    await migrateCatalogUrl(fileUrl());
    const catalog = await open(fileUrl(), 'never');
    await expect(catalog.ping()).resolves.toBeUndefined();
  });

  it('a catalog migrated by a newer tasklog is refused', async () => {
    await migrateCatalogUrl(fileUrl());
    rawSqlite(join(dir, 'catalog.db'))
      .prepare('insert into kysely_migration (name, timestamp) values (?, ?)')
      .run('9999_from_the_future', '2030-01-01T00:00:00.000Z');
    for (const migrate of ['auto', 'never'] as const) {
      await expect(openCatalog(fileUrl(), { migrate })).rejects.toThrow(
        /migrated by a newer tasklog \(unknown migrations: 9999_from_the_future\)/,
      );
    }
    await expect(migrateCatalogUrl(fileUrl())).rejects.toBeInstanceOf(BackendUnavailableError);
  });

  it('opens an in-memory catalog', async () => {
    const catalog = await open('sqlite::memory:');
    await catalog.upsert(key(), { relativePath: 'a.log' });
    expect((await catalog.get(key()))?.relativePath).toBe('a.log');
  });

  it('puts the file database in WAL mode', async () => {
    await open();
    const mode = rawSqlite(join(dir, 'catalog.db')).pragma('journal_mode', { simple: true });
    expect(mode).toBe('wal');
  });

  it('refuses PostgreSQL URLs for now', async () => {
    for (const url of ['postgres://u:p@localhost/db', 'postgresql://localhost/db']) {
      await expect(openCatalog(url)).rejects.toThrow(
        new InvalidInputError('PostgreSQL catalogs arrive in a later release'),
      );
    }
  });

  it('refuses a URL that is not an absolute sqlite path', async () => {
    for (const url of ['sqlite://relative/catalog.db', 'mysql://host/db', '/tmp/catalog.db']) {
      await expect(openCatalog(url)).rejects.toBeInstanceOf(InvalidInputError);
    }
  });

  it('a file that is not a database fails as BackendUnavailableError naming the URL', async () => {
    await writeFile(join(dir, 'catalog.db'), 'this is not a database, just text '.repeat(100));
    const err = await openCatalog(fileUrl()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toContain(fileUrl());
    expect((err as Error).cause).toBeInstanceOf(Error);
  });
});

describe('SqlCatalog', () => {
  it('upsert inserts a running attempt with the given relative path', async () => {
    const catalog = await open();
    const record = await catalog.upsert(key(), { relativePath: 'dag_id=etl/attempt=1.log' });
    expect(record).toMatchObject({
      key: key(),
      relativePath: 'dag_id=etl/attempt=1.log',
      state: 'running',
      size: null,
      sha256: null,
      storeUrl: null,
      agentUrl: null,
      shippedAt: null,
      heartbeatAt: null,
    });
    expect(record.createdAt).toBeInstanceOf(Date);
    expect(record.updatedAt.getTime()).toBe(record.createdAt.getTime());
  });

  it('a partial update changes only the given fields and keeps the others', async () => {
    const catalog = await open();
    const first = await catalog.upsert(key(), {
      relativePath: 'a.log',
      agentUrl: 'http://worker-1:8793',
      storeUrl: 's3://bucket/logs',
    });
    const second = await catalog.upsert(key(), {
      relativePath: 'a.log',
      state: 'shipped',
      size: 123,
      sha256: 'a'.repeat(64),
    });
    expect(second).toMatchObject({
      state: 'shipped',
      size: 123,
      sha256: 'a'.repeat(64),
      agentUrl: 'http://worker-1:8793',
      storeUrl: 's3://bucket/logs',
    });
    expect(second.createdAt).toEqual(first.createdAt);
    expect(second.updatedAt.getTime()).toBeGreaterThanOrEqual(first.updatedAt.getTime());
    expect(await catalog.get(key())).toEqual(second);
  });

  it('an update without state does not reset the state to running', async () => {
    const catalog = await open();
    await catalog.upsert(key(), { relativePath: 'a.log', state: 'shipping' });
    const record = await catalog.upsert(key(), { relativePath: 'a.log', size: 5 });
    expect(record.state).toBe('shipping');
  });

  it('a field set to null is cleared', async () => {
    const catalog = await open();
    await catalog.upsert(key(), { relativePath: 'a.log', agentUrl: 'http://w:1' });
    const record = await catalog.upsert(key(), { relativePath: 'a.log', agentUrl: null });
    expect(record.agentUrl).toBeNull();
  });

  it('sizes above 2^32 round-trip', async () => {
    const catalog = await open();
    const size = 5 * 1024 ** 3;
    await catalog.upsert(key(), { relativePath: 'a.log', size });
    expect((await catalog.get(key()))?.size).toBe(size);
  });

  it('timestamps round-trip as Date with milliseconds', async () => {
    const catalog = await open();
    const shippedAt = new Date('2024-03-04T05:06:07.089Z');
    const heartbeatAt = new Date('2024-03-04T05:06:00.001Z');
    await catalog.upsert(key(), { relativePath: 'a.log', shippedAt, heartbeatAt });
    const record = await catalog.get(key());
    expect(record?.shippedAt).toEqual(shippedAt);
    expect(record?.heartbeatAt).toEqual(heartbeatAt);
  });

  it('stores timestamps as ISO-8601 UTC text', async () => {
    const catalog = await open();
    await catalog.upsert(key(), {
      relativePath: 'a.log',
      shippedAt: new Date('2024-03-04T05:06:07.089Z'),
    });
    const row = await rawKysely(join(dir, 'catalog.db'))
      .selectFrom('attempts')
      .select(['shipped_at', 'created_at'])
      .executeTakeFirstOrThrow();
    expect(row.shipped_at).toBe('2024-03-04T05:06:07.089Z');
    expect(row.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('get returns undefined for an attempt never recorded', async () => {
    const catalog = await open();
    expect(await catalog.get(key({ tryNumber: 7 }))).toBeUndefined();
  });

  it('upsert rejects an invalid key with InvalidInputError', async () => {
    const catalog = await open();
    const bad = { ...key(), dagId: '../etc', taskId: 'a/b' };
    await expect(catalog.upsert(bad, { relativePath: 'a.log' })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });

  it('upsert rejects an unknown state with InvalidInputError', async () => {
    const catalog = await open();
    const patch = { relativePath: 'a.log', state: 'done' as 'running' };
    await expect(catalog.upsert(key(), patch)).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('list applies every given filter field and orders by the key', async () => {
    const catalog = await open();
    const keys = [
      key({ taskId: 'load', tryNumber: 2 }),
      key({ taskId: 'extract', mapIndex: 3, tryNumber: 1 }),
      key({ taskId: 'extract', mapIndex: 1, tryNumber: 2 }),
      key({ taskId: 'extract', mapIndex: 1, tryNumber: 1 }),
      key({ runId: 'manual__2024', taskId: 'extract' }),
      key({ dagId: 'other' }),
    ];
    for (const k of keys) await catalog.upsert(k, { relativePath: `${k.taskId}.log` });

    const all = await catalog.list({});
    expect(
      all.map((r) => [r.key.dagId, r.key.runId, r.key.taskId, r.key.mapIndex, r.key.tryNumber]),
    ).toEqual([
      ['etl', 'manual__2024', 'extract', -1, 1],
      ['etl', 'scheduled__2024-01-01T00:00:00+00:00', 'extract', 1, 1],
      ['etl', 'scheduled__2024-01-01T00:00:00+00:00', 'extract', 1, 2],
      ['etl', 'scheduled__2024-01-01T00:00:00+00:00', 'extract', 3, 1],
      ['etl', 'scheduled__2024-01-01T00:00:00+00:00', 'load', -1, 2],
      ['other', 'scheduled__2024-01-01T00:00:00+00:00', 'extract', -1, 1],
    ]);

    const run = 'scheduled__2024-01-01T00:00:00+00:00';
    expect((await catalog.list({ dagId: 'etl', runId: run })).length).toBe(4);
    expect((await catalog.list({ dagId: 'etl', runId: run, taskId: 'extract' })).length).toBe(3);
    expect(await catalog.list({ taskId: 'extract', mapIndex: 1, tryNumber: 2 })).toEqual([
      await catalog.get(key({ taskId: 'extract', mapIndex: 1, tryNumber: 2 })),
    ]);
    expect(await catalog.list({ dagId: 'missing' })).toEqual([]);
  });

  it('list returns at most limit records', async () => {
    const catalog = await open();
    for (let t = 1; t <= 5; t++) await catalog.upsert(key({ tryNumber: t }), { relativePath: 'a' });
    const page = await catalog.list({}, { limit: 2 });
    expect(page.map((r) => r.key.tryNumber)).toEqual([1, 2]);
  });

  it('latestTry is the highest try recorded for the task instance', async () => {
    const catalog = await open();
    for (const tryNumber of [1, 3, 2]) {
      await catalog.upsert(key({ tryNumber }), { relativePath: 'a.log' });
    }
    await catalog.upsert(key({ mapIndex: 0, tryNumber: 9 }), { relativePath: 'b.log' });
    const { dagId, runId, taskId } = key();
    expect(await catalog.latestTry({ dagId, runId, taskId, mapIndex: -1 })).toBe(3);
    expect(await catalog.latestTry({ dagId, runId, taskId, mapIndex: 0 })).toBe(9);
    expect(await catalog.latestTry({ dagId, runId, taskId: 'never', mapIndex: -1 })).toBe(
      undefined,
    );
  });

  it('two catalogs on one file see each other’s writes', async () => {
    const a = await open();
    const b = await open();
    await a.upsert(key(), { relativePath: 'a.log' });
    expect((await b.get(key()))?.relativePath).toBe('a.log');
    await b.upsert(key(), { relativePath: 'a.log', state: 'shipped' });
    expect((await a.get(key()))?.state).toBe('shipped');
  });

  it('ping resolves on an open catalog', async () => {
    const catalog = await open();
    await expect(catalog.ping()).resolves.toBeUndefined();
  });

  it('after close, operations fail with BackendUnavailableError naming the URL and operation', async () => {
    const catalog = await openCatalog(fileUrl());
    await catalog.close();
    const err = await catalog.ping().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toContain(`catalog ${fileUrl()}: ping failed`);
    expect((err as Error).cause).toBeDefined();
  });

  it('masks the password in its url', () => {
    const db = new Kysely<CatalogDatabase>({
      dialect: new SqliteDialect({ database: new Database(':memory:') }),
    });
    opened.push({ close: () => db.destroy() });
    const catalog = new SqlCatalogClass(db, 'postgres://tasklog:s3cret@db.internal:5432/tasklog');
    expect(catalog.url).toBe('postgres://tasklog:***@db.internal:5432/tasklog');
  });

  it('a database error is wrapped with the masked URL, never the password', async () => {
    const db = new Kysely<CatalogDatabase>({
      dialect: new SqliteDialect({ database: new Database(':memory:') }),
    });
    opened.push({ close: () => db.destroy() });
    // No migration ran, so the attempts table is missing.
    const catalog = new SqlCatalogClass(db, 'postgres://tasklog:s3cret@db.internal/tasklog');
    const err = await catalog.get(key()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toContain(
      'postgres://tasklog:***@db.internal/tasklog: get failed',
    );
    expect((err as Error).message).not.toContain('s3cret');
  });
});
