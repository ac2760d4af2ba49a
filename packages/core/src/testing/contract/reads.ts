import { beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, OffsetOutOfRangeError } from '../../errors.js';
import type { LogChunk, LogStore } from '../../store.js';
import { readAll } from '../read-all.js';
import { type ContractSuite, key, sha256, writeLog } from './fixture.js';

/** Reads: byte-exact round trips, reads from any offset and up to an `end`, a missing attempt. */
export function describeReads(suite: ContractSuite): void {
  describe('round trip', () => {
    let store: LogStore;
    beforeEach(() => {
      store = suite.store;
    });

    const cases: [string, () => Buffer][] = [
      ['an empty log', () => Buffer.alloc(0)],
      ['a log without a trailing newline', () => Buffer.from('first line\nlast line')],
      ['a log with CRLF line ends', () => Buffer.from('one\r\ntwo\r\n\r\nthree\r\n')],
      [
        'a single 5 MiB line',
        () => Buffer.concat([Buffer.alloc(5 * 1024 * 1024, 'x'), Buffer.from('\n')]),
      ],
      [
        'multi-byte characters and lone CR/LF bytes',
        () => Buffer.from('é€𝄞\n\r\n\rmixed é line€\n𝄞𝄞𝄞'),
      ],
    ];
    for (const [label, make] of cases) {
      it(`stores and returns ${label} byte for byte`, async () => {
        const content = make();
        await writeLog(store, key(), content);
        const back = await readAll(store, key());
        expect(back.length).toBe(content.length);
        expect(sha256(back)).toBe(sha256(content));
        expect(back.equals(content)).toBe(true);
      });
    }

    it('keeps multi-byte characters intact when flushes split them', async () => {
      const content = Buffer.from('é€𝄞 line one\nsecond é€𝄞\n𝄞');
      // A cut after every byte puts a chunk boundary inside every multi-byte character.
      const cuts = Array.from({ length: content.length - 1 }, (_, i) => i + 1);
      await writeLog(store, key(), content, cuts);
      expect((await readAll(store, key())).equals(content)).toBe(true);
    });

    it('returns the same bytes when the writer appends in 1 MiB pieces', async () => {
      const content = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i < content.length; i++) content[i] = (i * 31 + (i >> 8)) & 0xff;
      const writer = await store.openWriter(key());
      for (let from = 0; from < content.length; from += 1024 * 1024) {
        await writer.append(content.subarray(from, from + 1024 * 1024));
      }
      await writer.finish({ size: content.length, sha256: sha256(content) });
      expect(sha256(await readAll(store, key()))).toBe(sha256(content));
    });
  });

  describe('reading from an offset', () => {
    let store: LogStore;
    beforeEach(() => {
      store = suite.store;
    });

    const content = Buffer.from('line 1\r\nzweite Zeile é\n€uro 𝄞\nno newline');

    it('returns exactly the suffix from every offset of a finished log', async () => {
      await writeLog(store, key(), content, [5, 13, 14, 30]);
      for (let offset = 0; offset <= content.length; offset++) {
        const back = await readAll(store, key(), { offset });
        expect(back.equals(content.subarray(offset))).toBe(true);
      }
    });

    it('stops before `end`', async () => {
      await writeLog(store, key(), content, [10]);
      expect(
        (await readAll(store, key(), { offset: 3, end: 20 })).equals(content.subarray(3, 20)),
      ).toBe(true);
      expect(
        (await readAll(store, key(), { offset: 0, end: 10 })).equals(content.subarray(0, 10)),
      ).toBe(true);
      expect((await readAll(store, key(), { offset: 12, end: 12 })).length).toBe(0);
    });

    it('yields nothing when the offset equals the size', async () => {
      await writeLog(store, key(), content);
      expect((await readAll(store, key(), { offset: content.length })).length).toBe(0);
    });

    it('throws OffsetOutOfRangeError for an offset past the end', async () => {
      await writeLog(store, key(), content);
      const err = await readAll(store, key(), { offset: content.length + 1 }).catch((e) => e);
      expect(err).toBeInstanceOf(OffsetOutOfRangeError);
      expect(err).toMatchObject({ offset: content.length + 1, size: content.length });
    });

    it('serves two concurrent readers of one log independently', async () => {
      const big = Buffer.alloc(300 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
      await writeLog(store, key(), big, [100 * 1024]);
      const a = store.read(key())[Symbol.asyncIterator]();
      const b = store.read(key(), { offset: 1000 })[Symbol.asyncIterator]();
      const got: [Buffer[], Buffer[]] = [[], []];
      let doneA = false;
      let doneB = false;
      while (!doneA || !doneB) {
        if (!doneA) {
          const r: IteratorResult<LogChunk> = await a.next();
          if (r.done) doneA = true;
          else got[0].push(Buffer.from(r.value.bytes));
        }
        if (!doneB) {
          const r: IteratorResult<LogChunk> = await b.next();
          if (r.done) doneB = true;
          else got[1].push(Buffer.from(r.value.bytes));
        }
      }
      expect(Buffer.concat(got[0]).equals(big)).toBe(true);
      expect(Buffer.concat(got[1]).equals(big.subarray(1000))).toBe(true);
    });
  });

  describe('a missing attempt', () => {
    let store: LogStore;
    beforeEach(() => {
      store = suite.store;
    });

    it('makes read throw NotFoundError', async () => {
      await expect(readAll(store, key({ taskId: 'never_ran' }))).rejects.toBeInstanceOf(
        NotFoundError,
      );
    });

    it('makes stat return undefined', async () => {
      expect(await store.stat(key({ taskId: 'never_ran' }))).toBeUndefined();
    });
  });
}
