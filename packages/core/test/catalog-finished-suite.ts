import {
  type AttemptKey,
  type AttemptState,
  formatAttempt,
  InvalidInputError,
} from '@tasklog/core';
import { describe, expect, it } from 'vitest';
import type { FinishedState } from '../src/catalog/catalog.js';
import { type CatalogBackend, key } from './catalog-suite.js';
import { useSeededCatalog } from './seeded-catalog.js';

interface Seed {
  key: Partial<AttemptKey>;
  /** Days after 2024-01-01T00:00Z the record last changed. */
  day: number;
  state: AttemptState;
}

const day = (d: number) => new Date(Date.UTC(2024, 0, 1 + d));

/** Retention's catalog calls, `listFinished` and `delete`, on every backend. */
export function catalogFinishedSuite(backend: CatalogBackend): void {
  describe(`catalog retention on ${backend.name}`, () => {
    const seeded = useSeededCatalog(backend);
    const seed = (rows: Seed[]) =>
      seeded.seed(
        rows.map((r) => ({ key: r.key, state: r.state, size: 10, updatedAt: day(r.day) })),
      );

    /** Every page of `listFinished`, as formatted keys. */
    async function allFinished(
      olderThan: Date,
      options: { dags?: string[]; states?: FinishedState[]; limit?: number } = {},
    ): Promise<string[]> {
      const out: string[] = [];
      let after: Awaited<ReturnType<typeof seeded.catalog.listFinished>>['next'] | undefined;
      for (;;) {
        const page = await seeded.catalog.listFinished({
          olderThan,
          ...options,
          ...(after ? { after } : {}),
        });
        out.push(...page.records.map((r) => formatAttempt(r.key)));
        if (page.next === null) return out;
        after = page.next;
      }
    }

    it('lists finished attempts last changed before the cutoff, oldest first, never running or shipping ones', async () => {
      await seed([
        { key: { taskId: 'shipped' }, day: 3, state: 'shipped' },
        { key: { taskId: 'failed' }, day: 1, state: 'failed' },
        { key: { taskId: 'abandoned' }, day: 2, state: 'abandoned' },
        { key: { taskId: 'running' }, day: 0, state: 'running' },
        { key: { taskId: 'shipping' }, day: 0, state: 'shipping' },
        { key: { taskId: 'recent' }, day: 20, state: 'shipped' },
      ]);
      const page = await seeded.catalog.listFinished({ olderThan: day(10) });
      expect(page.records.map((r) => r.key.taskId)).toEqual(['failed', 'abandoned', 'shipped']);
      expect(page.records[0]?.updatedAt).toEqual(day(1));
      expect(page.next).toBeNull();
    });

    it('the cutoff is exclusive: a record changed exactly at it stays', async () => {
      await seed([{ key: {}, day: 5, state: 'shipped' }]);
      expect((await seeded.catalog.listFinished({ olderThan: day(5) })).records).toEqual([]);
    });

    it('pages by position, so deleting a page does not skip records of the next', async () => {
      // Ten attempts changed at the same instant: the key orders them within it.
      await seed(
        Array.from({ length: 10 }, (_, i) => ({
          key: { taskId: `t${i}` },
          day: 1,
          state: 'shipped' as const,
        })),
      );
      const seen: string[] = [];
      let page = await seeded.catalog.listFinished({ olderThan: day(2), limit: 3 });
      for (;;) {
        seen.push(...page.records.map((r) => r.key.taskId));
        for (const r of page.records) await seeded.catalog.delete(r.key);
        if (page.next === null) break;
        page = await seeded.catalog.listFinished({ olderThan: day(2), limit: 3, after: page.next });
      }
      expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => `t${i}`));
      expect(await seeded.catalog.list({})).toEqual([]);
    });

    it('filters by DAG patterns (* and ?, case-sensitive) and by finished states', async () => {
      await seed([
        { key: { dagId: 'etl_a' }, day: 1, state: 'shipped' },
        { key: { dagId: 'etl_b' }, day: 2, state: 'failed' },
        { key: { dagId: 'ETL_c' }, day: 3, state: 'shipped' },
        { key: { dagId: 'etlXd' }, day: 4, state: 'shipped' },
        { key: { dagId: 'billing' }, day: 5, state: 'abandoned' },
      ]);
      const dags = async (patterns: string[], states?: FinishedState[]) =>
        (await allFinished(day(9), { dags: patterns, ...(states ? { states } : {}) })).map(
          (k) => k.split('/')[0],
        );
      expect(await dags(['etl_*'])).toEqual(['etl_a', 'etl_b']);
      expect(await dags(['etl?d', 'billing'])).toEqual(['etlXd', 'billing']);
      expect(await dags(['*'], ['failed', 'abandoned'])).toEqual(['etl_b', 'billing']);
      expect(await dags([])).toEqual([]);
    });

    it('refuses running or shipping as a state to list, a bad date and a bad limit', async () => {
      for (const states of [['running'], ['shipping'], []] as unknown as FinishedState[][]) {
        await expect(
          seeded.catalog.listFinished({ olderThan: day(1), states }),
        ).rejects.toBeInstanceOf(InvalidInputError);
      }
      await expect(
        seeded.catalog.listFinished({ olderThan: new Date(Number.NaN) }),
      ).rejects.toBeInstanceOf(InvalidInputError);
      for (const limit of [0, 10_001, 1.5]) {
        await expect(
          seeded.catalog.listFinished({ olderThan: day(1), limit }),
        ).rejects.toBeInstanceOf(InvalidInputError);
      }
    });

    it('delete removes the record and returns it; a missing record is undefined', async () => {
      await seed([{ key: {}, day: 1, state: 'shipped' }]);
      const removed = await seeded.catalog.delete(key());
      expect(removed?.key).toEqual(key());
      expect(removed?.size).toBe(10);
      expect(await seeded.catalog.get(key())).toBeUndefined();
      expect(await seeded.catalog.delete(key())).toBeUndefined();
    });

    it('delete with conditions leaves a record that was resumed or changed since', async () => {
      await seed([
        { key: { tryNumber: 1 }, day: 1, state: 'running' },
        { key: { tryNumber: 2 }, day: 8, state: 'shipped' },
        { key: { tryNumber: 3 }, day: 1, state: 'abandoned' },
      ]);
      const when = { states: ['shipped', 'abandoned'] as const, olderThan: day(5) };
      expect(await seeded.catalog.delete(key({ tryNumber: 1 }), when)).toBeUndefined();
      expect(await seeded.catalog.delete(key({ tryNumber: 2 }), when)).toBeUndefined();
      expect((await seeded.catalog.delete(key({ tryNumber: 3 }), when))?.state).toBe('abandoned');
      expect((await seeded.catalog.list({})).map((r) => r.key.tryNumber)).toEqual([1, 2]);
      expect(await seeded.catalog.delete(key({ tryNumber: 2 }), { states: [] })).toBeUndefined();
    });

    it('delete leaves other attempts of the task alone', async () => {
      await seed([
        { key: { tryNumber: 1 }, day: 1, state: 'shipped' },
        { key: { tryNumber: 2 }, day: 1, state: 'shipped' },
        { key: { mapIndex: 0, tryNumber: 1 }, day: 1, state: 'shipped' },
      ]);
      await seeded.catalog.delete(key({ tryNumber: 1 }));
      expect((await seeded.catalog.list({})).map((r) => [r.key.mapIndex, r.key.tryNumber])).toEqual(
        [
          [-1, 2],
          [0, 1],
        ],
      );
    });
  });
}
