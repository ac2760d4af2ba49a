import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BackendUnavailableError,
  InvalidInputError,
  migrateCatalogUrl,
  openCatalog,
} from '@tasklog/core';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CatalogDatabase,
  type SqlCatalog,
  SqlCatalog as SqlCatalogClass,
} from '../src/catalog/sql-catalog.js';
import { catalogFinishedSuite } from './catalog-finished-suite.js';
import { catalogGroupsSuite } from './catalog-groups-suite.js';
import { type CatalogBackend, catalogSuite, key } from './catalog-suite.js';

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
  // The SQL catalog behind the contract: these tests also look at its tables.
  const catalog = (await openCatalog(url, migrate === undefined ? {} : { migrate })) as SqlCatalog;
  opened.push(catalog);
  return catalog;
}

function rawSqlite(path: string): Database.Database {
  const db = new Database(path);
  opened.push({ close: async () => void db.close() });
  return db;
}

// The behaviours every backend shares (catalog-postgres.test.ts runs them on PostgreSQL); the
// tests below are SQLite's own.
const sqlite: CatalogBackend = {
  name: 'SQLite',
  freshUrl: async () => fileUrl(),
  rawKysely: (url) =>
    new Kysely<CatalogDatabase>({
      dialect: new SqliteDialect({ database: new Database(url.slice('sqlite://'.length)) }),
    }),
  separateSessions: true,
};
catalogSuite(sqlite);
catalogGroupsSuite(sqlite);
catalogFinishedSuite(sqlite);

describe('migrations', () => {
  it('migrate creates missing parent folders of the database file', async () => {
    const url = fileUrl('a/b/c/catalog.db');
    await migrateCatalogUrl(url);
    expect(existsSync(join(dir, 'a/b/c/catalog.db'))).toBe(true);
  });
});

describe('openCatalog', () => {
  it("with migrate 'auto' a new file is migrated at open", async () => {
    const catalog = await open(fileUrl(), 'auto');
    expect(await catalog.get(key())).toBeUndefined();
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
