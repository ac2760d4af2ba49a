import { beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, IntegrityError, OffsetOutOfRangeError } from '../../errors.js';
import type { LogChunk, LogStore } from '../../store.js';
import { readAll } from '../read-all.js';
import { appendInPieces, type ContractSuite, key, sha256, writeLog } from './fixture.js';

/**
 * Writers: resuming at the committed offset, finish() verifying size and sha256, refusals after
 * finish and abort; and a running attempt as stat and read see it.
 */
export function describeWriters(suite: ContractSuite): void {
  describe('writers', () => {
    let store: LogStore;
    beforeEach(() => {
      store = suite.store;
    });

    it('resumes after a crash at the last flushed byte and ends byte-identical', async () => {
      const content = Buffer.from('flushed line one\nflushed é two\nlost line three\nfour\n');
      const flushedUpTo = 31;
      const crashed = await store.openWriter(key());
      expect(crashed.committedOffset).toBe(0);
      await crashed.append(content.subarray(0, 20));
      await crashed.flush();
      await crashed.append(content.subarray(20, flushedUpTo));
      expect(await crashed.flush()).toBe(flushedUpTo);
      await crashed.append(content.subarray(flushedUpTo, 45));
      // The worker dies here: no flush, no finish, no abort.

      const resumed = await store.openWriter(key());
      expect(resumed.committedOffset).toBe(flushedUpTo);
      await resumed.append(content.subarray(resumed.committedOffset));
      await resumed.finish({ size: content.length, sha256: sha256(content) });
      expect((await readAll(store, key())).equals(content)).toBe(true);
    });

    it('resumes at the committed offset after an abort', async () => {
      const content = Buffer.from('kept\ndropped\n');
      const first = await store.openWriter(key());
      await first.append(content.subarray(0, 5));
      await first.flush();
      await first.append(content.subarray(5));
      await first.abort();
      const second = await store.openWriter(key());
      expect(second.committedOffset).toBe(5);
    });

    it('reports the bytes it accepted in `offset` and the durable ones in `committedOffset`', async () => {
      const writer = await store.openWriter(key());
      await writer.append(Buffer.from('abc'));
      expect(writer.offset).toBe(3);
      expect(await writer.flush()).toBe(3);
      expect(writer.committedOffset).toBe(3);
      await writer.append(Buffer.from('de'));
      expect(writer.offset).toBe(5);
      expect(writer.committedOffset).toBe(3);
      await writer.abort();
    });

    it('returns the committed offset from a flush with nothing buffered', async () => {
      const writer = await store.openWriter(key());
      expect(await writer.flush()).toBe(0);
      await writer.append(Buffer.from('x'));
      expect(await writer.flush()).toBe(1);
      expect(await writer.flush()).toBe(1);
      await writer.abort();
    });

    it('throws IntegrityError from finish with a wrong sha256 and keeps what was flushed', async () => {
      const content = Buffer.from('some bytes\n');
      const writer = await store.openWriter(key());
      await writer.append(content);
      await expect(
        writer.finish({ size: content.length, sha256: sha256(Buffer.from('other')) }),
      ).rejects.toBeInstanceOf(IntegrityError);
      const stat = await store.stat(key());
      expect(stat).toMatchObject({ size: content.length, complete: false });
      const resumed = await store.openWriter(key());
      expect(resumed.committedOffset).toBe(content.length);
      await resumed.finish({ size: content.length, sha256: sha256(content) });
      expect((await readAll(store, key())).equals(content)).toBe(true);
    });

    it('throws IntegrityError from finish with a wrong size', async () => {
      const content = Buffer.from('some bytes\n');
      const writer = await store.openWriter(key());
      await writer.append(content);
      await expect(
        writer.finish({ size: content.length + 1, sha256: sha256(content) }),
      ).rejects.toBeInstanceOf(IntegrityError);
    });

    it('refuses to open a writer on a finished log with ConflictError', async () => {
      await writeLog(store, key(), Buffer.from('done\n'));
      await expect(store.openWriter(key())).rejects.toBeInstanceOf(ConflictError);
    });

    it('refuses appends after finish with ConflictError', async () => {
      const writer = await store.openWriter(key());
      await writer.append(Buffer.from('x'));
      await writer.finish({ size: 1, sha256: sha256(Buffer.from('x')) });
      await expect(writer.append(Buffer.from('y'))).rejects.toBeInstanceOf(ConflictError);
    });

    it('refuses appends after abort with ConflictError', async () => {
      const writer = await store.openWriter(key());
      await writer.abort();
      await expect(writer.append(Buffer.from('y'))).rejects.toBeInstanceOf(ConflictError);
    });
  });

  describe('a running attempt', () => {
    let store: LogStore;
    beforeEach(() => {
      store = suite.store;
    });

    it('reports its flushed size as not complete, then complete after finish', async () => {
      const writer = await store.openWriter(key());
      await writer.append(Buffer.from('first\n'));
      await writer.flush();
      await writer.append(Buffer.from('unflushed'));
      expect(await store.stat(key())).toMatchObject({ size: 6, complete: false });
      await writer.finish({ size: 15, sha256: sha256(Buffer.from('first\nunflushed')) });
      expect(await store.stat(key())).toMatchObject({ size: 15, complete: true });
    });

    it.skipIf(!suite.capabilities.liveAppend)(
      'serves its flushed bytes before finish, from any offset',
      async () => {
        const content = Buffer.from('a line é\nanother €\n𝄞 and more\ntail');
        const writer = await store.openWriter(key());
        await appendInPieces(writer, content.subarray(0, 30), [4, 9, 10, 21]);
        await writer.append(content.subarray(30));
        for (let offset = 0; offset <= 30; offset++) {
          const back = await readAll(store, key(), { offset });
          expect(back.equals(content.subarray(offset, 30))).toBe(true);
        }
        expect(
          (await readAll(store, key(), { offset: 5, end: 12 })).equals(content.subarray(5, 12)),
        ).toBe(true);
        await expect(readAll(store, key(), { offset: 31 })).rejects.toBeInstanceOf(
          OffsetOutOfRangeError,
        );
        await writer.finish({ size: content.length, sha256: sha256(content) });
        expect((await readAll(store, key())).equals(content)).toBe(true);
      },
    );

    it.skipIf(!suite.capabilities.liveAppend)(
      'lets a reader that started on the chunks finish reading across the writer finishing',
      async () => {
        const content = Buffer.alloc(200 * 1024);
        for (let i = 0; i < content.length; i++) content[i] = (i * 13) & 0xff;
        const writer = await store.openWriter(key());
        await appendInPieces(writer, content, [70 * 1024, 140 * 1024]);
        const it = store.read(key())[Symbol.asyncIterator]();
        const first = await it.next();
        expect(first.done).toBe(false);
        await writer.finish({ size: content.length, sha256: sha256(content) });
        const pieces = [Buffer.from((first as IteratorYieldResult<LogChunk>).value.bytes)];
        for (let r = await it.next(); !r.done; r = await it.next())
          pieces.push(Buffer.from(r.value.bytes));
        expect(Buffer.concat(pieces).equals(content)).toBe(true);
      },
    );
  });
}
