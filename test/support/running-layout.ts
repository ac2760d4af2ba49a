import { type AttemptKey, attemptKey, type LogStore } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  chunkName,
  legacyRunningPrefix,
  runningPrefix,
} from '../../packages/core/src/stores/shared/chunk-layout.js';
import { sha256 } from './hash.js';

/** A blob store (S3, GCS) and plain access to the objects behind it. */
export interface BlobStoreFixture {
  store: LogStore;
  /** Object name (key) of an attempt's finished log, Airflow's key. */
  finalName(key: AttemptKey): string;
  /** Creates an object as another program would. */
  put(name: string, bytes: Buffer): Promise<void>;
  /** Names of every object that starts with `prefix`, sorted: what Airflow's reader lists. */
  names(prefix: string): Promise<string[]>;
  /** The object an older tasklog wrote to mark an attempt opened but not flushed. */
  legacyMarker: { name: string; bytes: Buffer };
  cleanup(): Promise<void>;
}

const KEY = attemptKey({
  dagId: 'layout',
  runId: 'manual__2024-05-01T10:00:00.123456+00:00',
  taskId: 'runs',
  tryNumber: 1,
});

async function listAll(store: LogStore): Promise<AttemptKey[]> {
  const out: AttemptKey[] = [];
  for await (const k of store.list({ dagId: KEY.dagId })) out.push(k);
  return out;
}

/**
 * Where a running attempt lives in a blob store: outside the prefix Airflow lists for the
 * attempt's key (see `runningPrefix`), while archives an older tasklog wrote, with chunks at
 * `<key>.chunks/`, stay readable, resumable and removable.
 */
export function describeRunningLayout(name: string, setup: () => Promise<BlobStoreFixture>): void {
  describe(`running attempts of ${name}`, () => {
    let f: BlobStoreFixture;
    let final: string;
    const first = Buffer.from('[2024-05-01] first line é\n');
    const second = Buffer.from('second line €\n');
    /** Chunks as an older tasklog left them at `<key>.chunks/`. */
    const putLegacyChunks = async () => {
      await f.put(`${legacyRunningPrefix(final)}${chunkName(0)}`, first);
      await f.put(`${legacyRunningPrefix(final)}${chunkName(first.length)}`, second);
    };

    beforeEach(async () => {
      f = await setup();
      final = f.finalName(KEY);
    });
    afterEach(async () => {
      await f.store.close();
      await f.cleanup();
    });

    it('keep everything, from the moment a writer opens, outside the prefix Airflow lists', async () => {
      const writer = await f.store.openWriter(KEY);
      expect(await f.names(final)).toEqual([]);
      expect(await f.store.stat(KEY)).toMatchObject({ size: 0, complete: false });
      await writer.append(first);
      await writer.flush();
      await writer.append(second.subarray(0, 15)); // ends inside the €
      await writer.flush();
      expect(await f.names(final)).toEqual([]);
      expect((await f.names(runningPrefix(final))).length).toBeGreaterThan(1);
      expect(await listAll(f.store)).toEqual([KEY]);
      await writer.append(second.subarray(15));
      const log = Buffer.concat([first, second]);
      await writer.finish({ size: log.length, sha256: sha256(log) });
      expect(await f.names(final)).toEqual([final]);
      expect(await f.names(runningPrefix(final))).toEqual([]);
    });

    it('are not disturbed by Airflow’s trigger log beside the key', async () => {
      await f.put(`${final}.trigger.42.log`, Buffer.from('trigger says hi\n'));
      const writer = await f.store.openWriter(KEY);
      await writer.append(first);
      await writer.flush();
      expect((await readAll(f.store, KEY)).equals(first)).toBe(true);
      expect(await listAll(f.store)).toEqual([KEY]);
      await writer.finish({ size: first.length, sha256: sha256(first) });
      expect(await f.names(final)).toEqual([final, `${final}.trigger.42.log`]);
      expect((await readAll(f.store, KEY)).equals(first)).toBe(true);
    });

    it('an older tasklog left at <key>.chunks/ are read, stated and listed', async () => {
      await putLegacyChunks();
      const log = Buffer.concat([first, second]);
      expect(await f.store.stat(KEY)).toMatchObject({ size: log.length, complete: false });
      expect((await readAll(f.store, KEY)).equals(log)).toBe(true);
      expect((await readAll(f.store, KEY, { offset: 20 })).equals(log.subarray(20))).toBe(true);
      expect(await listAll(f.store)).toEqual([KEY]);
    });

    it('an older tasklog opened but never flushed read as running and empty', async () => {
      await f.put(`${legacyRunningPrefix(final)}${f.legacyMarker.name}`, f.legacyMarker.bytes);
      expect(await f.store.stat(KEY)).toMatchObject({ size: 0, complete: false });
      expect((await readAll(f.store, KEY)).length).toBe(0);
      expect(await listAll(f.store)).toEqual([KEY]);
    });

    it('an older tasklog left are resumed, with new chunks only in the new place', async () => {
      await putLegacyChunks();
      const legacy = await f.names(legacyRunningPrefix(final));
      const writer = await f.store.openWriter(KEY);
      expect(writer.committedOffset).toBe(first.length + second.length);
      const third = Buffer.from('third line, written after the upgrade 𝄞\n');
      await writer.append(third);
      await writer.flush();
      expect(await f.names(legacyRunningPrefix(final))).toEqual(legacy);
      expect(await f.names(runningPrefix(final))).toContain(
        `${runningPrefix(final)}${chunkName(first.length + second.length)}`,
      );
      const log = Buffer.concat([first, second, third]);
      expect((await readAll(f.store, KEY)).equals(log)).toBe(true);
      await writer.finish({ size: log.length, sha256: sha256(log) });
      expect((await readAll(f.store, KEY)).equals(log)).toBe(true);
      expect(await f.names(final)).toEqual([final]);
      expect(await f.names(runningPrefix(final))).toEqual([]);
    });

    it('of both layouts are listed once each, next to finished ones in the same folder', async () => {
      const tries = [1, 2, 3, 4].map((tryNumber) => attemptKey({ ...KEY, tryNumber }));
      const [finished, finishedWithLeftovers, runningNew, runningOld] = tries as [
        AttemptKey,
        AttemptKey,
        AttemptKey,
        AttemptKey,
      ];
      await f.put(f.finalName(finished), first);
      await f.put(f.finalName(finishedWithLeftovers), first);
      await f.put(`${runningPrefix(f.finalName(finishedWithLeftovers))}${chunkName(0)}`, first);
      await f.put(
        `${legacyRunningPrefix(f.finalName(finishedWithLeftovers))}${chunkName(0)}`,
        first,
      );
      await f.put(`${runningPrefix(f.finalName(runningNew))}${chunkName(0)}`, first);
      await f.put(`${legacyRunningPrefix(f.finalName(runningOld))}${chunkName(0)}`, first);
      const listed = (await listAll(f.store)).map((k) => k.tryNumber);
      expect(listed.sort()).toEqual([1, 2, 3, 4]);
      for (const k of tries) {
        expect((await readAll(f.store, k)).equals(first)).toBe(true);
      }
    });

    it('an older tasklog left are removed by delete()', async () => {
      await putLegacyChunks();
      await f.store.delete(KEY);
      expect(await f.store.stat(KEY)).toBeUndefined();
      expect(await f.names(final)).toEqual([]);
      expect(await listAll(f.store)).toEqual([]);
    });

    it('an older tasklog left beside a complete log are removed by sweep()', async () => {
      await putLegacyChunks();
      const log = Buffer.concat([first, second]);
      await f.put(final, log);
      await f.store.sweep!(KEY);
      expect(await f.names(final)).toEqual([final]);
      expect(await f.names(runningPrefix(final))).toEqual([]);
      expect((await readAll(f.store, KEY)).equals(log)).toBe(true);
      expect(await listAll(f.store)).toEqual([KEY]);
    });
  });
}
