import { beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError } from '../../errors.js';
import type { LogStore } from '../../store.js';
import { readAll } from '../read-all.js';
import { type ContractSuite, id, key, listAll, RUN_ID, writeLog } from './fixture.js';

/** Listing by dag, run, task and map index, and deleting. */
export function describeListingAndDeleting(suite: ContractSuite): void {
  describe('listing', () => {
    let store: LogStore;
    const attempts = [
      key({ dagId: 'etl', runId: RUN_ID, taskId: 'load', tryNumber: 1 }),
      key({ dagId: 'etl', runId: RUN_ID, taskId: 'load', tryNumber: 2 }),
      key({ dagId: 'etl', runId: RUN_ID, taskId: 'fan_out', mapIndex: 0 }),
      key({ dagId: 'etl', runId: RUN_ID, taskId: 'fan_out', mapIndex: 3 }),
      key({ dagId: 'etl', runId: 'manual__2024-05-01T10:00:00.123456+00:00', taskId: 'load' }),
      key({ dagId: 'etl_other', runId: RUN_ID, taskId: 'load' }),
      key({ dagId: 'reports', runId: RUN_ID, taskId: 'load' }),
    ];

    beforeEach(async () => {
      store = suite.store;
      for (const [i, k] of attempts.entries()) {
        await writeLog(store, k, Buffer.from(`log ${i}\n`));
      }
    });

    it('lists every attempt of a dag, mapped ones included', async () => {
      expect(await listAll(store, { dagId: 'etl' })).toEqual(attempts.slice(0, 5).map(id).sort());
    });

    it('lists the attempts of one dag run', async () => {
      expect(await listAll(store, { dagId: 'etl', runId: RUN_ID })).toEqual(
        attempts.slice(0, 4).map(id).sort(),
      );
    });

    it('lists the attempts of one task of one dag run', async () => {
      expect(await listAll(store, { dagId: 'etl', runId: RUN_ID, taskId: 'fan_out' })).toEqual(
        attempts.slice(2, 4).map(id).sort(),
      );
      expect(await listAll(store, { dagId: 'etl', runId: RUN_ID, taskId: 'load' })).toEqual(
        attempts.slice(0, 2).map(id).sort(),
      );
    });

    it('lists one mapped instance by its map index', async () => {
      expect(
        await listAll(store, { dagId: 'etl', runId: RUN_ID, taskId: 'fan_out', mapIndex: 3 }),
      ).toEqual([id(attempts[3]!)]);
    });

    it('lists running attempts once, next to finished ones', async () => {
      const running = key({ dagId: 'etl', runId: RUN_ID, taskId: 'load', tryNumber: 3 });
      const writer = await store.openWriter(running);
      await writer.append(Buffer.from('running\n'));
      await writer.flush();
      expect(await listAll(store, { dagId: 'etl', runId: RUN_ID, taskId: 'load' })).toEqual(
        [...attempts.slice(0, 2), running].map(id).sort(),
      );
      await writer.abort();
    });

    it('lists nothing for a dag it has never seen', async () => {
      expect(await listAll(store, { dagId: 'unknown_dag' })).toEqual([]);
    });
  });

  describe('deleting', () => {
    let store: LogStore;
    beforeEach(() => {
      store = suite.store;
    });

    it('removes a finished log', async () => {
      await writeLog(store, key(), Buffer.from('bye\n'));
      await store.delete(key());
      expect(await store.stat(key())).toBeUndefined();
      await expect(readAll(store, key())).rejects.toBeInstanceOf(NotFoundError);
      expect(await listAll(store, { dagId: key().dagId })).toEqual([]);
    });

    it('removes a running attempt and its chunks', async () => {
      const writer = await store.openWriter(key());
      await writer.append(Buffer.from('partial\n'));
      await writer.flush();
      await writer.abort();
      await store.delete(key());
      expect(await store.stat(key())).toBeUndefined();
      const fresh = await store.openWriter(key());
      expect(fresh.committedOffset).toBe(0);
      await fresh.abort();
    });

    it('treats deleting a missing attempt as done', async () => {
      await expect(store.delete(key({ taskId: 'never_ran' }))).resolves.toBeUndefined();
    });

    it('leaves other attempts alone', async () => {
      await writeLog(store, key({ tryNumber: 1 }), Buffer.from('one\n'));
      await writeLog(store, key({ tryNumber: 2 }), Buffer.from('two\n'));
      await store.delete(key({ tryNumber: 1 }));
      expect((await readAll(store, key({ tryNumber: 2 }))).toString()).toBe('two\n');
    });
  });
}
