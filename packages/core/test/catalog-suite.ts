import {
  type AttemptKey,
  attemptKey,
  BackendUnavailableError,
  InvalidInputError,
  migrateCatalogUrl,
  openCatalog,
} from '@tasklog/core';
import type { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { catalogMigrations, migrateCatalog, schemaStatus } from '../src/catalog/migrations.js';
import type { CatalogDatabase, SqlCatalog } from '../src/catalog/sql-catalog.js';

/** One catalog backend the shared suite runs against. */
export interface CatalogBackend {
  name: string;
  /** Called before each test: the URL of an empty database, no schema. */
  freshUrl(): Promise<string>;
  /** A kysely of its own over `url`, for checking the database from outside the catalog. */
  rawKysely(url: string): Kysely<CatalogDatabase>;
  /** Whether concurrent migrations from separate connections are meaningful (not PGlite). */
  separateSessions: boolean;
}

/** The attempts of the catalog tests: the first try of an unmapped `etl.extract`, but for `over`. */
export const key = (over: Partial<AttemptKey> = {}): AttemptKey =>
  attemptKey({
    dagId: 'etl',
    runId: 'scheduled__2024-01-01T00:00:00+00:00',
    taskId: 'extract',
    mapIndex: -1,
    tryNumber: 1,
    ...over,
  });

/** The catalog behaviours every backend shares: one suite, run once per backend. */
export function catalogSuite(backend: CatalogBackend): void {
  describe(`catalog on ${backend.name}`, () => {
    let url: string;
    const opened: Array<{ close(): Promise<void> }> = [];

    beforeEach(async () => {
      url = await backend.freshUrl();
    });

    afterEach(async () => {
      for (const c of opened.splice(0)) await c.close();
    });

    function raw(): Kysely<CatalogDatabase> {
      const db = backend.rawKysely(url);
      opened.push({ close: () => db.destroy() });
      return db;
    }

    /** A migrated catalog, closed after the test. */
    async function open(): Promise<SqlCatalog> {
      await migrateCatalogUrl(url);
      const catalog = (await openCatalog(url, { migrate: 'never' })) as SqlCatalog;
      opened.push(catalog);
      return catalog;
    }

    describe('migrations', () => {
      it('migrating a new database creates the attempts table and reports the migration applied', async () => {
        expect(await migrateCatalogUrl(url)).toEqual({ applied: [...catalogMigrations] });
        const tables = await raw().introspection.getTables();
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
          'airflow_state',
          'exit_code',
        ]);
      });

      it('migrating twice applies nothing the second time', async () => {
        await migrateCatalogUrl(url);
        expect(await migrateCatalogUrl(url)).toEqual({ applied: [] });
      });

      it.skipIf(!backend.separateSessions)(
        'concurrent migrations of one new database all succeed and apply the migration once',
        async () => {
          const results = await Promise.all([1, 2, 3, 4].map(() => migrateCatalogUrl(url)));
          expect(results.flatMap((r) => r.applied)).toEqual([...catalogMigrations]);
          expect((await schemaStatus(raw())).pending).toEqual([]);
        },
      );

      it('schemaStatus reports the migration pending before and current after migrating', async () => {
        const db = raw();
        expect(await schemaStatus(db)).toEqual({
          current: undefined,
          latest: '0002_outcome',
          pending: ['0001_attempts', '0002_outcome'],
          unknown: [],
        });
        expect(await migrateCatalog(db)).toEqual({ applied: ['0001_attempts', '0002_outcome'] });
        expect(await schemaStatus(db)).toEqual({
          current: '0002_outcome',
          latest: '0002_outcome',
          pending: [],
          unknown: [],
        });
      });

      it('schemaStatus does not create anything in an empty database', async () => {
        const db = raw();
        await schemaStatus(db);
        expect(await db.introspection.getTables({ withInternalKyselyTables: true })).toEqual([]);
      });
    });

    describe('openCatalog', () => {
      it("with migrate 'never' an unmigrated database is refused, naming tasklog db migrate", async () => {
        const err = await openCatalog(url, { migrate: 'never' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BackendUnavailableError);
        expect((err as Error).message).toContain(
          `catalog schema is not migrated (pending: ${catalogMigrations.join(', ')}); run: tasklog db migrate`,
        );
      });

      it("with migrate 'never' a migrated database opens", async () => {
        await migrateCatalogUrl(url);
        const catalog = await openCatalog(url, { migrate: 'never' });
        opened.push(catalog);
        await expect(catalog.ping()).resolves.toBeUndefined();
      });

      it('a catalog migrated by a newer tasklog is refused', async () => {
        await migrateCatalogUrl(url);
        await (
          raw() as unknown as Kysely<{ kysely_migration: { name: string; timestamp: string } }>
        )
          .insertInto('kysely_migration')
          .values({ name: '9999_from_the_future', timestamp: '2030-01-01T00:00:00.000Z' })
          .execute();
        for (const migrate of ['auto', 'never'] as const) {
          await expect(openCatalog(url, { migrate })).rejects.toThrow(
            /migrated by a newer tasklog \(unknown migrations: 9999_from_the_future\)/,
          );
        }
        await expect(migrateCatalogUrl(url)).rejects.toBeInstanceOf(BackendUnavailableError);
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

      it('sizes above 2^32 round-trip as numbers', async () => {
        const catalog = await open();
        const size = 5 * 1024 ** 3;
        await catalog.upsert(key(), { relativePath: 'a.log', size });
        expect((await catalog.get(key()))?.size).toBe(size);
        expect((await catalog.list({}))[0]?.size).toBe(size);
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
        const row = await raw()
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
        expect((await catalog.list({ dagId: 'etl', runId: run, taskId: 'extract' })).length).toBe(
          3,
        );
        expect(await catalog.list({ taskId: 'extract', mapIndex: 1, tryNumber: 2 })).toEqual([
          await catalog.get(key({ taskId: 'extract', mapIndex: 1, tryNumber: 2 })),
        ]);
        expect(await catalog.list({ dagId: 'missing' })).toEqual([]);
      });

      it('list orders text by its UTF-8 bytes, whatever the database locale', async () => {
        const catalog = await open();
        // A natural-language collation puts 'a' before 'B', ignores '_' and '-', and sorts 'é'
        // next to 'e'; byte order does none of that.
        const dags = ['a', 'B', 'a_b', 'ab', 'a-c', 'é', 'z', 'Z', '日本'];
        for (const dagId of dags) await catalog.upsert(key({ dagId }), { relativePath: 'a.log' });
        const byBytes = [...dags].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
        expect((await catalog.list({})).map((r) => r.key.dagId)).toEqual(byBytes);
      });

      it('list returns at most limit records', async () => {
        const catalog = await open();
        for (let t = 1; t <= 5; t++) {
          await catalog.upsert(key({ tryNumber: t }), { relativePath: 'a' });
        }
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

      it('two catalogs on one database see each other’s writes', async () => {
        const a = await open();
        const b = await open();
        await a.upsert(key(), { relativePath: 'a.log' });
        expect((await b.get(key()))?.relativePath).toBe('a.log');
        await b.upsert(key(), { relativePath: 'a.log', state: 'shipped' });
        expect((await a.get(key()))?.state).toBe('shipped');
      });

      it("records Airflow's state of the try and the task's exit code", async () => {
        const catalog = await open();
        const inserted = await catalog.upsert(key(), { relativePath: 'a.log' });
        expect(inserted.airflowState).toBeNull();
        expect(inserted.exitCode).toBeNull();
        await catalog.upsert(key(), {
          relativePath: 'a.log',
          airflowState: 'up_for_retry',
          exitCode: 137,
        });
        const read = await catalog.get(key());
        expect(read?.airflowState).toBe('up_for_retry');
        expect(read?.exitCode).toBe(137);
      });

      it('abandonIfStale abandons a running attempt whose heartbeat is older than the limit', async () => {
        const catalog = await open();
        await catalog.upsert(key(), {
          relativePath: 'a.log',
          heartbeatAt: new Date('2024-01-01T00:00:00.000Z'),
        });
        const changed = await catalog.abandonIfStale(key(), new Date('2024-01-01T00:01:00.000Z'));
        expect(changed?.state).toBe('abandoned');
        expect((await catalog.get(key()))?.state).toBe('abandoned');
      });

      it('abandonIfStale leaves an attempt alone whose heartbeat is fresh or that is not running', async () => {
        const catalog = await open();
        await catalog.upsert(key(), {
          relativePath: 'a.log',
          heartbeatAt: new Date('2024-01-01T00:02:00.000Z'),
        });
        await catalog.upsert(key({ tryNumber: 2 }), {
          relativePath: 'b.log',
          state: 'shipped',
          heartbeatAt: new Date('2024-01-01T00:00:00.000Z'),
        });
        const limit = new Date('2024-01-01T00:01:00.000Z');
        expect(await catalog.abandonIfStale(key(), limit)).toBeUndefined();
        expect(await catalog.abandonIfStale(key({ tryNumber: 2 }), limit)).toBeUndefined();
        expect((await catalog.get(key()))?.state).toBe('running');
        expect((await catalog.get(key({ tryNumber: 2 })))?.state).toBe('shipped');
      });

      it('ping resolves on an open catalog', async () => {
        const catalog = await open();
        await expect(catalog.ping()).resolves.toBeUndefined();
      });

      it('after close, operations fail with BackendUnavailableError naming the URL and operation', async () => {
        await migrateCatalogUrl(url);
        const catalog = await openCatalog(url, { migrate: 'never' });
        await catalog.close();
        const err = await catalog.ping().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BackendUnavailableError);
        expect((err as Error).message).toContain(`catalog ${url}: ping failed`);
        expect((err as Error).cause).toBeDefined();
      });
    });
  });
}
