import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type AttemptKey,
  type AttemptState,
  attemptKey,
  formatAttempt,
  openCatalog,
  PathTemplate,
} from '@tasklog/core';

// better-sqlite3 is @tasklog/core's dependency; the tests borrow it rather than declaring a
// second copy of a native module (as test/airflow/airflow-fixture.ts does).
const coreRequire = createRequire(new URL('../../packages/core/package.json', import.meta.url));

/** better-sqlite3, for what the catalog API does not offer: setting `updated_at` in the past. */
export const Sqlite = coreRequire('better-sqlite3') as new (
  path: string,
  options?: { readonly?: boolean },
) => {
  prepare(sql: string): {
    run(...params: unknown[]): unknown;
    get(...params: unknown[]): unknown;
    all(...params: unknown[]): Record<string, unknown>[];
  };
  close(): unknown;
};

/** Which folder of a TASKLOG_HOME an attempt's log is in. */
export type SeedStore = 'archive' | 'old-archive' | 'foreign';

/** One seeded attempt. */
export interface SeededAttempt {
  key: AttemptKey;
  store: SeedStore;
  state: AttemptState;
  /** Last changed 60 days ago (else now). */
  old: boolean;
  size: number;
}

const STATES: AttemptState[] = [
  'running',
  'shipped',
  'shipped',
  'failed',
  'abandoned',
  'shipped',
  'shipping',
  'shipped',
  'failed',
  'shipped',
];

/**
 * `count` attempts over ten DAGs, half in `archive` (store.url) and half in `old-archive` (a
 * store.read_urls entry), every other run 60 days old, states mixed (running and shipping ones
 * among the old too); plus one old shipped attempt in `foreign`, a store nobody configured.
 */
export function retentionDataset(count: number): SeededAttempt[] {
  const out: SeededAttempt[] = [];
  for (let i = 0; i < count; i++) {
    const run = Math.floor(i / 100);
    const task = Math.floor(i / 10) % 10;
    const old = run % 2 === 0;
    out.push({
      key: attemptKey({
        dagId: `dag_${i % 10}`,
        runId: `${old ? 'old' : 'new'}_run_${run}`,
        taskId: `task_${task}`,
        mapIndex: -1,
        tryNumber: 1,
      }),
      store: (i + task) % 2 === 0 ? 'archive' : 'old-archive',
      state: STATES[(i + task) % STATES.length]!,
      old,
      size: 20 + (i % 50),
    });
  }
  out.push({
    key: attemptKey({
      dagId: 'foreign_dag',
      runId: 'old_run_foreign',
      taskId: 'task',
      mapIndex: -1,
      tryNumber: 1,
    }),
    store: 'foreign',
    state: 'shipped',
    old: true,
    size: 33,
  });
  return out;
}

/** What prune must delete: old, finished (not running, not shipping), in a configured store. */
export const prunable = (a: SeededAttempt) =>
  a.old && a.store !== 'foreign' && !['running', 'shipping'].includes(a.state);

export const storeUrl = (home: string, store: SeedStore) => pathToFileURL(join(home, store)).href;

/**
 * Writes each attempt's log straight into its store's folder (Airflow's layout: the file at the
 * relative path is the finished log) and records it through the catalog API, then sets the old
 * ones' `updated_at` 60 days back in one statement (the API stamps every change with now).
 */
export async function seedRetention(home: string, attempts: SeededAttempt[]): Promise<void> {
  const template = new PathTemplate();
  const pool = async <T>(items: T[], fn: (item: T) => Promise<unknown>) => {
    let next = 0;
    const workers = Array.from({ length: 32 }, async () => {
      while (next < items.length) await fn(items[next++]!);
    });
    await Promise.all(workers);
  };
  await pool(attempts, async (a) => {
    const file = join(home, a.store, ...template.render(a.key).split('/'));
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, Buffer.alloc(a.size, 'l'));
  });
  const path = join(home, 'catalog.db');
  const catalog = await openCatalog(`sqlite://${path}`);
  try {
    await pool(attempts, (a) =>
      catalog.upsert(a.key, {
        relativePath: template.render(a.key),
        state: a.state,
        size: a.size,
        storeUrl: storeUrl(home, a.store),
      }),
    );
  } finally {
    await catalog.close();
  }
  const db = new Sqlite(path);
  try {
    db.prepare("update attempts set updated_at = ? where run_id like 'old\\_%' escape '\\'").run(
      new Date(Date.now() - 60 * 86_400_000).toISOString(),
    );
  } finally {
    db.close();
  }
}

/** The attempts the catalog holds, formatted and sorted. */
export function catalogKeys(home: string): string[] {
  const db = new Sqlite(join(home, 'catalog.db'), { readonly: true });
  try {
    const rows = db
      .prepare('select dag_id, run_id, task_id, map_index, try_number from attempts')
      .all();
    return rows
      .map((r) =>
        formatAttempt({
          dagId: String(r.dag_id),
          runId: String(r.run_id),
          taskId: String(r.task_id),
          mapIndex: Number(r.map_index),
          tryNumber: Number(r.try_number),
        }),
      )
      .sort();
  } finally {
    db.close();
  }
}

/** How many attempts the catalog holds. */
export function catalogCount(home: string): number {
  const db = new Sqlite(join(home, 'catalog.db'), { readonly: true });
  try {
    return (db.prepare('select count(*) as n from attempts').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** The log files below a store's folder, as paths relative to it, sorted. */
export async function storeFiles(home: string, store: SeedStore): Promise<string[]> {
  const root = join(home, store);
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort();
}

/** The relative log paths of `attempts` in `store`, sorted. */
export function expectedFiles(attempts: SeededAttempt[], store: SeedStore): string[] {
  const template = new PathTemplate();
  return attempts
    .filter((a) => a.store === store)
    .map((a) => template.render(a.key))
    .sort();
}
