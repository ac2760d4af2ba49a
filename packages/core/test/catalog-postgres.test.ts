import {
  BackendUnavailableError,
  InvalidInputError,
  migrateCatalogUrl,
  openCatalog,
} from '@tasklog/core';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { type PostgresFixture, startPostgres } from '../../../test/support/postgres.js';
import { catalogMigrations, schemaStatus } from '../src/catalog/migrations.js';
import type { CatalogDatabase } from '../src/catalog/sql-catalog.js';
import { catalogFinishedSuite } from './catalog-finished-suite.js';
import { catalogGroupsSuite } from './catalog-groups-suite.js';
import { type CatalogBackend, catalogSuite } from './catalog-suite.js';

// One PostgreSQL for the file (PGlite takes seconds to start); each test empties its schema.
let postgres: PostgresFixture | undefined;
afterAll(async () => {
  await postgres?.close();
});

async function freshUrl(): Promise<string> {
  postgres ??= await startPostgres();
  const db = rawKysely(postgres.url);
  try {
    await sql`drop schema public cascade`.execute(db);
    await sql`create schema public`.execute(db);
  } finally {
    await db.destroy();
  }
  return postgres.url;
}

function rawKysely(url: string): Kysely<CatalogDatabase> {
  return new Kysely<CatalogDatabase>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url }) }),
  });
}

/** The fixture URL with a password added (PGlite and the CI server trust every login). */
function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = password;
  return u.toString();
}

const onServer = !!process.env.TASKLOG_TEST_POSTGRES_URL;

const backend: CatalogBackend = {
  name: `PostgreSQL (${onServer ? 'server' : 'PGlite'})`,
  freshUrl,
  rawKysely,
  separateSessions: onServer,
};
catalogSuite(backend);
catalogGroupsSuite(backend);
catalogFinishedSuite(backend);

describe('PostgreSQL catalog', () => {
  let url: string;
  beforeEach(async () => {
    url = await freshUrl();
  });

  it("never migrates at open, even with migrate 'auto', and leaves the database untouched", async () => {
    const err = await openCatalog(url, { migrate: 'auto' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toContain('run: tasklog db migrate');
    const db = rawKysely(url);
    try {
      expect(await db.introspection.getTables({ withInternalKyselyTables: true })).toEqual([]);
      expect((await schemaStatus(db)).current).toBeUndefined();
    } finally {
      await db.destroy();
    }
  });

  it('opens once migrated explicitly, with either migrate option', async () => {
    expect(await migrateCatalogUrl(url)).toEqual({ applied: [...catalogMigrations] });
    for (const migrate of ['auto', 'never'] as const) {
      const catalog = await openCatalog(url, { migrate });
      await catalog.close();
    }
  });

  it('accepts the postgresql:// scheme', async () => {
    const alias = url.replace(/^postgres:/, 'postgresql:');
    await migrateCatalogUrl(alias);
    const catalog = await openCatalog(alias);
    try {
      await expect(catalog.ping()).resolves.toBeUndefined();
      expect(catalog.url).toBe(alias);
    } finally {
      await catalog.close();
    }
  });

  it('masks the password in the url of an open catalog', async () => {
    const secret = withPassword(url, 's3cret');
    await migrateCatalogUrl(secret);
    const catalog = await openCatalog(secret);
    try {
      expect(catalog.url).toBe(withPassword(url, '***'));
    } finally {
      await catalog.close();
    }
  });

  it('masks the password in the error of an unmigrated catalog', async () => {
    const err = await openCatalog(withPassword(url, 's3cret')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toContain(withPassword(url, '***'));
    expect((err as Error).message).not.toContain('s3cret');
  });

  it('an unreachable server fails as BackendUnavailableError with the password masked', async () => {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    const unreachable = 'postgres://tasklog:s3cret@127.0.0.1:1/tasklog';
    for (const attempt of [() => openCatalog(unreachable), () => migrateCatalogUrl(unreachable)]) {
      const err = await attempt().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BackendUnavailableError);
      expect((err as Error).message).toContain(
        'catalog postgres://tasklog:***@127.0.0.1:1/tasklog',
      );
      expect((err as Error).message).not.toContain('s3cret');
      expect((err as Error).cause).toBeInstanceOf(Error);
    }
  });

  it('a malformed URL is InvalidInputError without the password', async () => {
    const err = await openCatalog('postgres://tasklog:s3cret@[::1/tasklog').catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).not.toContain('s3cret');
  });
});
