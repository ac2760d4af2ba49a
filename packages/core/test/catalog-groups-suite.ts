import { type AttemptKey, type AttemptState, InvalidInputError } from '@tasklog/core';
import { describe, expect, it } from 'vitest';
import { type CatalogBackend, key } from './catalog-suite.js';
import { useSeededCatalog } from './seeded-catalog.js';

interface Seed {
  key: Partial<AttemptKey>;
  /** Minutes after 2024-01-01T00:00Z the attempt last changed: the groups' order. */
  at: number;
  state?: AttemptState;
  size?: number;
}

const minute = (m: number) => new Date(Date.UTC(2024, 0, 1, 0, m)).toISOString();

/** `Catalog.groups`, the attempt browser's queries, on every backend. */
export function catalogGroupsSuite(backend: CatalogBackend): void {
  describe(`catalog groups on ${backend.name}`, () => {
    const seeded = useSeededCatalog(backend);
    const seed = (rows: Seed[]) =>
      seeded.seed(
        rows.map((r) => ({
          key: r.key,
          state: r.state ?? 'shipped',
          size: r.size ?? null,
          updatedAt: new Date(minute(r.at)),
        })),
      );

    const dagIds = async (dags?: readonly string[], q?: string) =>
      (await seeded.catalog.groups('dags', { dags, q })).groups.map((g) => g.dagId);

    it('lists DAGs newest first with their attempts, running attempts and last change', async () => {
      await seed([
        { key: { dagId: 'old' }, at: 1 },
        { key: { dagId: 'new', tryNumber: 1 }, at: 5 },
        { key: { dagId: 'new', tryNumber: 2 }, at: 9, state: 'running' },
        { key: { dagId: 'new', runId: 'r2' }, at: 3, state: 'running' },
        { key: { dagId: 'mid' }, at: 4 },
      ]);
      const page = await seeded.catalog.groups('dags');
      expect(page).toEqual({
        groups: [
          { dagId: 'new', attempts: 3, running: 2, lastUpdatedAt: new Date(minute(9)) },
          { dagId: 'mid', attempts: 1, running: 0, lastUpdatedAt: new Date(minute(4)) },
          { dagId: 'old', attempts: 1, running: 0, lastUpdatedAt: new Date(minute(1)) },
        ],
        next: null,
      });
    });

    it('pages with limit and offset and says where the next page starts', async () => {
      await seed(Array.from({ length: 5 }, (_, i) => ({ key: { dagId: `d${i}` }, at: i })));
      const first = await seeded.catalog.groups('dags', { limit: 2 });
      expect(first.groups.map((g) => g.dagId)).toEqual(['d4', 'd3']);
      expect(first.next).toBe(2);
      const last = await seeded.catalog.groups('dags', { limit: 2, offset: 4 });
      expect(last.groups.map((g) => g.dagId)).toEqual(['d0']);
      expect(last.next).toBeNull();
      const exact = await seeded.catalog.groups('dags', { limit: 5 });
      expect(exact.next).toBeNull();
    });

    it('filters by a case-insensitive substring of the id, taking % and _ literally', async () => {
      await seed([
        { key: { dagId: 'Billing_Daily' }, at: 1 },
        { key: { dagId: 'billingXdaily' }, at: 2 },
        { key: { dagId: 'etl' }, at: 3 },
        { key: { dagId: '100%_done' }, at: 4 },
      ]);
      expect(await dagIds(undefined, 'BILLING')).toEqual(['billingXdaily', 'Billing_Daily']);
      expect(await dagIds(undefined, 'g_d')).toEqual(['Billing_Daily']);
      expect(await dagIds(undefined, '%')).toEqual(['100%_done']);
    });

    it('lists and counts only the DAGs the grants match, case-sensitively', async () => {
      await seed([
        { key: { dagId: 'etl_a' }, at: 1 },
        { key: { dagId: 'etl_a', tryNumber: 2 }, at: 2, state: 'running' },
        { key: { dagId: 'etl_b' }, at: 3 },
        { key: { dagId: 'ETL_c' }, at: 4 },
        { key: { dagId: 'etlXd' }, at: 5 },
        { key: { dagId: 'billing' }, at: 6 },
      ]);
      const page = await seeded.catalog.groups('dags', { dags: ['etl_*'] });
      expect(page.groups.map((g) => [g.dagId, g.attempts, g.running])).toEqual([
        ['etl_b', 1, 0],
        ['etl_a', 2, 1],
      ]);
      expect(await dagIds(['billing', 'etl_?'])).toEqual(['billing', 'etl_b', 'etl_a']);
      expect(await dagIds(['*'])).toHaveLength(5);
      expect(await dagIds([])).toEqual([]);
      // Paging counts granted DAGs only: the first page is full of them.
      const first = await seeded.catalog.groups('dags', { dags: ['etl_*'], limit: 1 });
      expect(first).toMatchObject({ groups: [{ dagId: 'etl_b' }], next: 1 });
    });

    it('takes every grant character but * and ? literally', async () => {
      await seed([
        { key: { dagId: 'a%b' }, at: 1 },
        { key: { dagId: 'aXXb' }, at: 2 },
        { key: { dagId: 'x[1]y' }, at: 3 },
        { key: { dagId: 'x1y' }, at: 4 },
      ]);
      expect(await dagIds(['a%*'])).toEqual(['a%b']);
      expect(await dagIds(['x[1]*'])).toEqual(['x[1]y']);
      expect(await dagIds(['a_b'])).toEqual([]);
    });

    it("lists a DAG's runs newest first with their counts", async () => {
      await seed([
        { key: { runId: 'r1' }, at: 1 },
        { key: { runId: 'r1', taskId: 'load' }, at: 7, state: 'running' },
        { key: { runId: 'r2' }, at: 5 },
        { key: { dagId: 'other', runId: 'r3' }, at: 9 },
      ]);
      const page = await seeded.catalog.groups('runs', { dagId: 'etl' });
      expect(page.groups).toEqual([
        { runId: 'r1', attempts: 2, running: 1, lastUpdatedAt: new Date(minute(7)) },
        { runId: 'r2', attempts: 1, running: 0, lastUpdatedAt: new Date(minute(5)) },
      ]);
      expect((await seeded.catalog.groups('runs', { dagId: 'etl', q: 'R2' })).groups).toHaveLength(
        1,
      );
      expect((await seeded.catalog.groups('runs', { dagId: 'etl', dags: ['x*'] })).groups).toEqual(
        [],
      );
    });

    it("lists a run's task instances with their latest try's state and size", async () => {
      await seed([
        { key: { taskId: 'extract', tryNumber: 1 }, at: 1, state: 'failed', size: 10 },
        { key: { taskId: 'extract', tryNumber: 2 }, at: 3, state: 'running', size: 20 },
        { key: { taskId: 'extract', mapIndex: 0 }, at: 2, size: 5 },
        { key: { taskId: 'load' }, at: 4, size: 6 * 1024 ** 3 },
        { key: { runId: 'elsewhere', taskId: 'x' }, at: 9 },
      ]);
      const page = await seeded.catalog.groups('tasks', { dagId: 'etl', runId: key().runId });
      expect(page.groups).toEqual([
        {
          taskId: 'load',
          mapIndex: -1,
          attempts: 1,
          running: 0,
          latestTry: 1,
          state: 'shipped',
          size: 6 * 1024 ** 3,
          lastUpdatedAt: new Date(minute(4)),
        },
        {
          taskId: 'extract',
          mapIndex: -1,
          attempts: 2,
          running: 1,
          latestTry: 2,
          state: 'running',
          size: 20,
          lastUpdatedAt: new Date(minute(3)),
        },
        {
          taskId: 'extract',
          mapIndex: 0,
          attempts: 1,
          running: 0,
          latestTry: 1,
          state: 'shipped',
          size: 5,
          lastUpdatedAt: new Date(minute(2)),
        },
      ]);
      const q = await seeded.catalog.groups('tasks', {
        dagId: 'etl',
        runId: key().runId,
        q: 'LOA',
      });
      expect(q.groups.map((g) => g.taskId)).toEqual(['load']);
    });

    it('refuses a level without its scope, or a bad page, with InvalidInputError', async () => {
      await expect(seeded.catalog.groups('runs', {})).rejects.toBeInstanceOf(InvalidInputError);
      await expect(seeded.catalog.groups('tasks', { dagId: 'etl' })).rejects.toBeInstanceOf(
        InvalidInputError,
      );
      await expect(seeded.catalog.groups('dags', { limit: 0 })).rejects.toBeInstanceOf(
        InvalidInputError,
      );
      await expect(seeded.catalog.groups('dags', { offset: -1 })).rejects.toBeInstanceOf(
        InvalidInputError,
      );
    });
  });
}
