import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError } from '../../errors.js';
import type { LogStore } from '../../store.js';
import { readAll } from '../read-all.js';
import {
  appendInPieces,
  type ContractSuite,
  id,
  key,
  listAll,
  localLog,
  sha256,
  writeLog,
} from './fixture.js';

/** The optional methods `sweep` and `upload`, each tested only where the store has it. */
export function describeOptionalMethods(suite: ContractSuite): void {
  describe('sweeping', () => {
    let store: LogStore;
    beforeEach(() => {
      store = suite.store;
    });

    it.skipIf(!suite.canSweep)(
      'keeps a complete log byte for byte, however often it runs',
      async () => {
        const content = Buffer.from('finished line\nanother é line\n');
        await writeLog(store, key(), content, [7]);
        await store.sweep!(key());
        await store.sweep!(key());
        expect((await readAll(store, key())).equals(content)).toBe(true);
        expect(await store.stat(key())).toMatchObject({ size: content.length, complete: true });
        expect(await listAll(store, { dagId: key().dagId })).toEqual([id(key())]);
      },
    );

    it.skipIf(!suite.canSweep)(
      'leaves a running attempt readable and resumable at its committed offset',
      async () => {
        const content = Buffer.from('still running\n');
        const writer = await store.openWriter(key());
        await appendInPieces(writer, content, [5]);
        await store.sweep!(key());
        expect(await store.stat(key())).toMatchObject({ size: content.length, complete: false });
        const resumed = await store.openWriter(key());
        expect(resumed.committedOffset).toBe(content.length);
        await resumed.finish({ size: content.length, sha256: sha256(content) });
        expect((await readAll(store, key())).equals(content)).toBe(true);
      },
    );

    it.skipIf(!suite.canSweep)('treats an attempt it never saw as nothing to do', async () => {
      await expect(store.sweep!(key({ taskId: 'never_ran' }))).resolves.toBeUndefined();
      expect(await store.stat(key({ taskId: 'never_ran' }))).toBeUndefined();
    });
  });

  describe('uploading a finished file', () => {
    let store: LogStore;
    let dir: string;
    beforeEach(async () => {
      store = suite.store;
      dir = await mkdtemp(path.join(tmpdir(), 'tasklog-contract-upload-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it.skipIf(!suite.canUpload)(
      'refuses to store over a complete log with ConflictError and keeps the old one',
      async () => {
        const old = Buffer.from('first version\n');
        await writeLog(store, key(), old);
        const file = await localLog(dir, 'new.log', Buffer.from('second version\n'));
        await expect(store.upload!(key(), file)).rejects.toBeInstanceOf(ConflictError);
        expect((await readAll(store, key())).equals(old)).toBe(true);
      },
    );

    it.skipIf(!suite.canUpload)(
      'replaces a complete log with upload({ replace: true })',
      async () => {
        const old = Buffer.from('deferred task, first run\n');
        await writeLog(store, key(), old);
        const grown = Buffer.concat([old, Buffer.from('resumed after the deferral é\n')]);
        await store.upload!(key(), await localLog(dir, 'grown.log', grown), { replace: true });
        expect((await readAll(store, key())).equals(grown)).toBe(true);
        expect(await store.stat(key())).toMatchObject({ size: grown.length, complete: true });
        expect(await listAll(store, { dagId: key().dagId })).toEqual([id(key())]);
      },
    );

    it.skipIf(!suite.canUpload)('stores a log with replace when there was none', async () => {
      const content = Buffer.from('only version\n');
      await store.upload!(key(), await localLog(dir, 'only.log', content), { replace: true });
      expect((await readAll(store, key())).equals(content)).toBe(true);
    });
  });
}
