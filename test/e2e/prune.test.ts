/**
 * `tasklog prune` on a catalog of 10,000 attempts across two local stores (store.url and one
 * store.read_urls entry): exactly the old finished attempts go, from their store and the
 * catalog; running ones stay, however old; a second run finds nothing; a run killed partway and
 * run again ends where an uninterrupted one does; a dry run deletes nothing; a record naming a
 * store nobody configured is skipped and reported. And `retention.keep_days` in `tasklog serve`.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatAttempt } from '@tasklog/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli, startServe } from '../support/cli.js';
import {
  catalogCount,
  catalogKeys,
  expectedFiles,
  prunable,
  retentionDataset,
  type SeededAttempt,
  type SeedStore,
  seedRetention,
  storeFiles,
  storeUrl,
} from '../support/retention-seed.js';
import { useTasklogHome } from '../support/tasklog-home.js';

interface Summary {
  dryRun: boolean;
  deleted: { attempts: number; bytes: number };
  skipped: {
    attempts: number;
    reasons: Record<string, number>;
    list: { dagId: string; storeUrl: string; reason: string }[];
  };
  failed: { attempts: number };
  stores: { url: string; attempts: number; bytes: number; skipped: number; failed: number }[];
  complete: boolean;
}

const ATTEMPTS = 10_000;
const STORES: SeedStore[] = ['archive', 'old-archive', 'foreign'];

async function prune(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Summary> {
  const res = await runCli(['prune', '--older-than', '30d', '--json', ...args], env);
  expect(res.stderr).toBe('');
  expect(res.code).toBe(0);
  return JSON.parse(res.stdout.toString()) as Summary;
}

/** The home's read_urls entry is its `old-archive` folder. */
function configureStores(home: ReturnType<typeof useTasklogHome>): void {
  home.configure({ TASKLOG__STORE__READ_URLS: storeUrl(home.dir, 'old-archive') });
}

/** Checks that exactly `left` remain, in the catalog and in every store's folder. */
async function expectRemaining(home: string, left: SeededAttempt[]): Promise<void> {
  expect(catalogKeys(home)).toEqual(left.map((a) => formatAttempt(a.key)).sort());
  for (const store of STORES) {
    expect(await storeFiles(home, store), store).toEqual(expectedFiles(left, store));
  }
}

const dataset = retentionDataset(ATTEMPTS);
const gone = dataset.filter(prunable);
const left = dataset.filter((a) => !prunable(a));

describe('tasklog prune', () => {
  const home = useTasklogHome('prune');

  beforeAll(async () => {
    configureStores(home);
    await seedRetention(home.dir, dataset);
  }, 300_000);

  it('the dataset mixes old and new, finished and running attempts in both stores', () => {
    expect(dataset).toHaveLength(ATTEMPTS + 1);
    expect(gone.length).toBeGreaterThan(2000);
    expect(left.filter((a) => a.old && a.state === 'running').length).toBeGreaterThan(400);
    for (const store of ['archive', 'old-archive'] as const) {
      expect(gone.filter((a) => a.store === store).length).toBeGreaterThan(1000);
    }
  });

  it('--dry-run reports what would go and deletes nothing', async () => {
    const summary = await prune(home.env, '--dry-run');
    expect(summary.dryRun).toBe(true);
    expect(summary.deleted).toEqual({
      attempts: gone.length,
      bytes: gone.reduce((n, a) => n + a.size, 0),
    });
    await expectRemaining(home.dir, dataset);
  });

  it('--dry-run without --json lists each attempt that would go', async () => {
    const res = await runCli(
      ['prune', '--older-than', '30d', '--dry-run', '--dag', 'dag_3', '--state', 'failed'],
      home.env,
    );
    expect(res.code).toBe(0);
    const lines = res.stdout
      .toString()
      .split('\n')
      .filter((l) => l.startsWith('would delete dag_3/'));
    const expected = gone.filter((a) => a.key.dagId === 'dag_3' && a.state === 'failed');
    expect(lines).toHaveLength(expected.length);
    expect(catalogCount(home.dir)).toBe(dataset.length);
  });

  it('deletes exactly the old finished attempts from both stores and the catalog', async () => {
    const summary = await prune(home.env);
    const bytesIn = (store: SeedStore) =>
      gone.filter((a) => a.store === store).reduce((n, a) => n + a.size, 0);
    expect(summary.deleted).toEqual({
      attempts: gone.length,
      bytes: gone.reduce((n, a) => n + a.size, 0),
    });
    expect(summary.failed.attempts).toBe(0);
    expect(summary.complete).toBe(true);
    for (const store of ['archive', 'old-archive'] as const) {
      expect(summary.stores).toContainEqual({
        url: storeUrl(home.dir, store),
        attempts: gone.filter((a) => a.store === store).length,
        bytes: bytesIn(store),
        skipped: 0,
        failed: 0,
      });
    }
    await expectRemaining(home.dir, left);
  });

  it('skips and reports a record naming a store that is not configured, its log untouched', async () => {
    const summary = await prune(home.env);
    expect(summary.skipped.reasons).toEqual({ 'untrusted-store': 1 });
    expect(summary.skipped.list).toEqual([
      expect.objectContaining({
        dagId: 'foreign_dag',
        storeUrl: storeUrl(home.dir, 'foreign'),
        reason: 'untrusted-store',
      }),
    ]);
    expect(await storeFiles(home.dir, 'foreign')).toHaveLength(1);
  });

  it('a second run finds nothing to delete', async () => {
    const summary = await prune(home.env);
    expect(summary.deleted).toEqual({ attempts: 0, bytes: 0 });
    expect(summary.failed.attempts).toBe(0);
    await expectRemaining(home.dir, left);
  });
});

describe('tasklog prune killed partway', () => {
  const home = useTasklogHome('prune-kill');

  beforeAll(async () => {
    configureStores(home);
    await seedRetention(home.dir, dataset);
  }, 300_000);

  it('run again, ends in the state an uninterrupted run leaves', async () => {
    const child = spawn(process.execPath, [CLI, 'prune', '--older-than', '30d', '--json'], {
      env: home.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const exited = once(child, 'exit');
    // Killed once it has deleted some records but far from all of them.
    const start = dataset.length;
    let ended = false;
    child.once('exit', () => {
      ended = true;
    });
    while (!ended && catalogCount(home.dir) > start - 300) await sleep(10);
    child.kill('SIGKILL');
    const [code, signal] = (await exited) as [number | null, string | null];
    expect({ code, signal, stderr }).toEqual({ code: null, signal: 'SIGKILL', stderr: '' });
    const afterKill = catalogCount(home.dir);
    expect(afterKill).toBeLessThan(start);
    expect(afterKill).toBeGreaterThan(left.length);

    const summary = await prune(home.env);
    expect(summary.deleted.attempts).toBe(afterKill - left.length);
    await expectRemaining(home.dir, left);
    expect((await prune(home.env)).deleted.attempts).toBe(0);
  });
});

describe('retention.keep_days in tasklog serve', () => {
  const home = useTasklogHome('prune-serve', {
    TASKLOG__RETENTION__KEEP_DAYS: '30',
    TASKLOG__RETENTION__INTERVAL: '1',
  });
  const small = retentionDataset(200);

  beforeAll(async () => {
    configureStores(home);
    await seedRetention(home.dir, small);
  });

  it('prunes at start and again every interval, logging a summary', async () => {
    const serve = await startServe([], home.env);
    let stderr = '';
    serve.child.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    try {
      const kept = small.filter((a) => !prunable(a));
      const deadline = Date.now() + 30_000;
      while (catalogCount(home.dir) > kept.length && Date.now() < deadline) await sleep(50);
      await expectRemaining(home.dir, kept);

      // A later run (the interval is one second) takes what has grown old since.
      const later = retentionDataset(300).slice(200);
      await seedRetention(home.dir, later);
      const keptLater = [...kept, ...later.filter((a) => !prunable(a) && a.store !== 'foreign')];
      while (catalogCount(home.dir) > keptLater.length && Date.now() < deadline) await sleep(50);
      expect(catalogCount(home.dir)).toBe(keptLater.length);
      expect(stderr).toMatch(/retention: deleted \d+ attempt/);
    } finally {
      expect(await serve.stop()).toBe(0);
    }
  });
});
