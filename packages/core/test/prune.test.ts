import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type AttemptKey,
  type AttemptState,
  BackendUnavailableError,
  type Catalog,
  InvalidInputError,
  LocalStore,
  type LogStore,
  openCatalog,
  parseDuration,
  pruneAttempts,
  TrustedStores,
} from '@tasklog/core';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/schema.js';
import { key } from './catalog-suite.js';

const DAY = 86_400_000;
const NOW = Date.now();
const CUTOFF = new Date(NOW - 30 * DAY);

describe('parseDuration', () => {
  it('reads a whole number and a unit s, m, h, d or w as milliseconds', () => {
    expect(parseDuration('45s')).toBe(45_000);
    expect(parseDuration('90m')).toBe(90 * 60_000);
    expect(parseDuration('12h')).toBe(12 * 3_600_000);
    expect(parseDuration('30d')).toBe(30 * DAY);
    expect(parseDuration('2W')).toBe(14 * DAY);
  });

  it('refuses a zero, negative, fractional or unitless duration with InvalidInputError', () => {
    for (const text of ['0d', '-1d', '1.5h', '30', 'd', '', '3 days', '1y']) {
      expect(() => parseDuration(text), text).toThrow(InvalidInputError);
    }
  });
});

describe('retention settings', () => {
  const retention = configSchema.shape.retention;

  it('are off by default, with an hour between runs once keep_days is set', () => {
    expect(retention.parse({})).toEqual({ interval: 3600 });
    expect(retention.parse({ keep_days: '30', interval: '60' })).toEqual({
      keep_days: 30,
      interval: 60,
    });
  });

  it('refuse zero or fractional days and a zero interval', () => {
    for (const bad of [{ keep_days: 0 }, { keep_days: 1.5 }, { interval: 0 }]) {
      expect(retention.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('pruneAttempts', () => {
  let dir: string;
  let catalog: Catalog;
  let sqlite: Database.Database;
  let main: LocalStore;
  let old: LocalStore;
  let foreign: LocalStore;
  let stores: TrustedStores;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tasklog-prune-'));
    catalog = await openCatalog(`sqlite://${join(dir, 'catalog.db')}`);
    sqlite = new Database(join(dir, 'catalog.db'));
    main = new LocalStore({ root: join(dir, 'main') });
    old = new LocalStore({ root: join(dir, 'old') });
    foreign = new LocalStore({ root: join(dir, 'foreign') });
    stores = new TrustedStores({
      configured: main,
      readUrls: [old.url],
      open: async (url) => LocalStore.fromUrl(url),
    });
  });

  afterEach(async () => {
    await stores.close();
    sqlite.close();
    await catalog.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A finished log in `store` and its record, last changed `daysAgo` days ago. */
  async function attempt(
    over: Partial<AttemptKey>,
    options: { store?: LogStore; state?: AttemptState; daysAgo: number; size?: number },
  ): Promise<AttemptKey> {
    const k = key(over);
    const store = options.store ?? main;
    const bytes = Buffer.alloc(options.size ?? 100, 'x');
    const writer = await store.openWriter(k);
    await writer.append(bytes);
    await writer.finish({
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
    await catalog.upsert(k, {
      relativePath: 'x.log',
      state: options.state ?? 'shipped',
      size: bytes.length,
      storeUrl: store.url,
    });
    sqlite
      .prepare(
        'update attempts set updated_at = ? where dag_id = ? and run_id = ? and task_id = ? and map_index = ? and try_number = ?',
      )
      .run(
        new Date(NOW - options.daysAgo * DAY).toISOString(),
        k.dagId,
        k.runId,
        k.taskId,
        k.mapIndex,
        k.tryNumber,
      );
    return k;
  }

  const tasks = async () => (await catalog.list({})).map((r) => r.key.taskId).sort();

  it('deletes old finished attempts from their store and the catalog, and nothing else', async () => {
    const gone1 = await attempt({ taskId: 'shipped' }, { daysAgo: 40, size: 100 });
    const gone2 = await attempt(
      { taskId: 'failed' },
      { daysAgo: 31, size: 50, state: 'failed', store: old },
    );
    const stay1 = await attempt({ taskId: 'running' }, { daysAgo: 90, state: 'running' });
    const stay2 = await attempt({ taskId: 'shipping' }, { daysAgo: 90, state: 'shipping' });
    const stay3 = await attempt({ taskId: 'recent' }, { daysAgo: 2 });

    const summary = await pruneAttempts({ catalog, stores, olderThan: CUTOFF });

    expect(summary.deleted).toEqual({ attempts: 2, bytes: 150 });
    expect(summary.stores).toEqual(
      expect.arrayContaining([
        { url: main.url, attempts: 1, bytes: 100, skipped: 0, failed: 0 },
        { url: old.url, attempts: 1, bytes: 50, skipped: 0, failed: 0 },
      ]),
    );
    expect(summary.complete).toBe(true);
    expect(await main.stat(gone1)).toBeUndefined();
    expect(await old.stat(gone2)).toBeUndefined();
    for (const k of [stay1, stay2, stay3]) expect(await main.stat(k)).toBeDefined();
    expect(await tasks()).toEqual(['recent', 'running', 'shipping']);

    const again = await pruneAttempts({ catalog, stores, olderThan: CUTOFF });
    expect(again.deleted).toEqual({ attempts: 0, bytes: 0 });
    expect(again.skipped.attempts).toBe(0);
  });

  it('skips and reports a record naming a store that is not configured, leaving its log', async () => {
    const k = await attempt({ taskId: 'elsewhere' }, { daysAgo: 40, store: foreign });
    const summary = await pruneAttempts({ catalog, stores, olderThan: CUTOFF });
    expect(summary.deleted.attempts).toBe(0);
    expect(summary.skipped).toEqual({
      attempts: 1,
      reasons: { 'untrusted-store': 1 },
      list: [{ ...k, storeUrl: foreign.url, reason: 'untrusted-store' }],
    });
    expect(await foreign.stat(k)).toBeDefined();
    expect(await tasks()).toEqual(['elsewhere']);
  });

  it('a dry run reports what would go and deletes nothing', async () => {
    const k = await attempt({ taskId: 'a' }, { daysAgo: 40, size: 7 });
    const listed: string[] = [];
    const summary = await pruneAttempts({
      catalog,
      stores,
      olderThan: CUTOFF,
      dryRun: true,
      onDeleted: (r) => listed.push(r.key.taskId),
    });
    expect(summary).toMatchObject({ dryRun: true, deleted: { attempts: 1, bytes: 7 } });
    expect(listed).toEqual(['a']);
    expect(await main.stat(k)).toBeDefined();
    expect(await tasks()).toEqual(['a']);
  });

  it('finishes a record whose log a killed run already deleted', async () => {
    const k = await attempt({ taskId: 'half' }, { daysAgo: 40 });
    await main.delete(k);
    const summary = await pruneAttempts({ catalog, stores, olderThan: CUTOFF });
    expect(summary.deleted.attempts).toBe(1);
    expect(await tasks()).toEqual([]);
  });

  it('leaves an attempt resumed between listing and deleting', async () => {
    const k = await attempt({ taskId: 'resumed' }, { daysAgo: 40 });
    // The writer comes back right after the page was listed.
    const resuming = new Proxy(catalog, {
      get(target, prop) {
        if (prop === 'listFinished') {
          return async (q: Parameters<Catalog['listFinished']>[0]) => {
            const page = await target.listFinished(q);
            if (page.records.length > 0) {
              await target.upsert(k, { relativePath: 'x.log', state: 'running' });
            }
            return page;
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const summary = await pruneAttempts({ catalog: resuming, stores, olderThan: CUTOFF });
    expect(summary.skipped.reasons).toEqual({ changed: 1 });
    expect(await main.stat(k)).toBeDefined();
    expect((await catalog.get(k))?.state).toBe('running');
  });

  it('counts a failed store delete, keeps its record for the next run and goes on', async () => {
    const broken = await attempt({ taskId: 'broken' }, { daysAgo: 40, store: old });
    await attempt({ taskId: 'fine' }, { daysAgo: 40 });
    const failing = new TrustedStores({
      configured: main,
      readUrls: [old.url],
      open: async () => {
        throw new BackendUnavailableError('old archive is down');
      },
    });
    const errors: unknown[] = [];
    const summary = await pruneAttempts({
      catalog,
      stores: failing,
      olderThan: CUTOFF,
      onError: (err) => errors.push(err),
    });
    expect(summary.deleted.attempts).toBe(1);
    expect(summary.failed.attempts).toBe(1);
    expect(summary.failed.list[0]).toMatchObject({
      taskId: 'broken',
      reason: 'old archive is down',
    });
    expect(errors[0]).toBeInstanceOf(BackendUnavailableError);
    expect(await tasks()).toEqual(['broken']);
    expect(await old.stat(broken)).toBeDefined();
  });

  it('filters by DAG pattern and state, and stops at the limit saying more remain', async () => {
    await attempt({ dagId: 'etl_a', taskId: 'a' }, { daysAgo: 40 });
    await attempt({ dagId: 'etl_b', taskId: 'b' }, { daysAgo: 41, state: 'abandoned' });
    await attempt({ dagId: 'billing', taskId: 'c' }, { daysAgo: 42 });
    const byDag = await pruneAttempts({
      catalog,
      stores,
      olderThan: CUTOFF,
      dags: ['etl_*'],
      states: ['shipped'],
    });
    expect(byDag.deleted.attempts).toBe(1);
    expect(await tasks()).toEqual(['b', 'c']);
    const limited = await pruneAttempts({ catalog, stores, olderThan: CUTOFF, limit: 1 });
    expect(limited).toMatchObject({ deleted: { attempts: 1 }, complete: false });
    const rest = await pruneAttempts({ catalog, stores, olderThan: CUTOFF, limit: 1 });
    expect(rest).toMatchObject({ deleted: { attempts: 1 }, complete: true });
    expect(await tasks()).toEqual([]);
  });

  it('pages through many candidates with bounded concurrency', async () => {
    for (let i = 0; i < 25; i++) await attempt({ taskId: `t${i}` }, { daysAgo: 40, size: 4 });
    const summary = await pruneAttempts({
      catalog,
      stores,
      olderThan: CUTOFF,
      pageSize: 7,
      concurrency: 3,
    });
    expect(summary.deleted).toEqual({ attempts: 25, bytes: 100 });
    expect(await tasks()).toEqual([]);
  });

  it('trusts a record without a store URL as the configured store', () => {
    expect(stores.trusts(null)).toBe(true);
    expect(stores.urlOf(null)).toBe(main.url);
    expect(stores.trusts(foreign.url)).toBe(false);
    expect(stores.trusts(pathToFileURL(join(dir, 'old')).href)).toBe(true);
  });
});
