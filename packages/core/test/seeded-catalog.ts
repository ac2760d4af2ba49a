import { type AttemptKey, type AttemptState, migrateCatalogUrl, openCatalog } from '@tasklog/core';
import type { Kysely } from 'kysely';
import { afterEach, beforeEach } from 'vitest';
import type { CatalogDatabase, SqlCatalog } from '../src/catalog/sql-catalog.js';
import { type CatalogBackend, key } from './catalog-suite.js';

/** One attempt to record, with when it last changed. */
export interface SeedRow {
  key: Partial<AttemptKey>;
  updatedAt: Date;
  state: AttemptState;
  size?: number | null;
}

/** A fresh, migrated catalog per test, and a way to record attempts with chosen `updated_at`s. */
export interface SeededCatalog {
  readonly catalog: SqlCatalog;
  seed(rows: readonly SeedRow[]): Promise<void>;
}

/** Registers the hooks in the surrounding block. */
export function useSeededCatalog(backend: CatalogBackend): SeededCatalog {
  let catalog: SqlCatalog | undefined;
  let raw: Kysely<CatalogDatabase> | undefined;

  beforeEach(async () => {
    const url = await backend.freshUrl();
    await migrateCatalogUrl(url);
    catalog = (await openCatalog(url, { migrate: 'never' })) as SqlCatalog;
    raw = backend.rawKysely(url);
  });

  afterEach(async () => {
    await raw?.destroy();
    await catalog?.close();
  });

  return {
    get catalog() {
      if (!catalog) throw new Error('the catalog is opened in a beforeEach');
      return catalog;
    },
    /** Records the attempts; `updated_at` is set afterwards, since upsert stamps the current time. */
    async seed(rows) {
      if (!catalog || !raw) throw new Error('the catalog is opened in a beforeEach');
      for (const row of rows) {
        const k = key(row.key);
        await catalog.upsert(k, {
          relativePath: 'a.log',
          state: row.state,
          size: row.size ?? null,
        });
        await raw
          .updateTable('attempts')
          .set({ updated_at: row.updatedAt.toISOString() })
          .where('dag_id', '=', k.dagId)
          .where('run_id', '=', k.runId)
          .where('task_id', '=', k.taskId)
          .where('map_index', '=', k.mapIndex)
          .where('try_number', '=', k.tryNumber)
          .execute();
      }
    },
  };
}
