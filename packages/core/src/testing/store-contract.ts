import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AttemptKey, attemptKey } from '../attempt-key.js';
import { ConflictError, IntegrityError, NotFoundError, OffsetOutOfRangeError } from '../errors.js';
import type { LocalLogFile, LogChunk, LogStore, LogWriter } from '../store.js';
import { readAll } from './read-all.js';

/** A store for one test, and how to remove what it stored once the test is over. */
export interface StoreFixture {
  /** A fresh store, holding none of the attempts the suite writes (see describeStoreContract). */
  store: LogStore;
  /** Called after `store.close()`, e.g. to remove a temporary folder; none needed by default. */
  cleanup?: () => Promise<void>;
}

const RUN_ID = 'scheduled__2024-01-01T00:00:00+00:00';

function key(overrides: Partial<AttemptKey> = {}): AttemptKey {
  return attemptKey({
    dagId: 'contract_dag',
    runId: RUN_ID,
    taskId: 'extract',
    mapIndex: -1,
    tryNumber: 1,
    ...overrides,
  });
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Appends `content` split at `cuts` (sorted byte positions), flushing after every piece. */
async function appendInPieces(writer: LogWriter, content: Buffer, cuts: number[]): Promise<void> {
  let from = 0;
  for (const cut of [...cuts, content.length]) {
    if (cut <= from) continue;
    await writer.append(content.subarray(from, cut));
    await writer.flush();
    from = cut;
  }
}

async function writeLog(
  store: LogStore,
  k: AttemptKey,
  content: Buffer,
  cuts: number[] = [],
): Promise<void> {
  const writer = await store.openWriter(k);
  await appendInPieces(writer, content, cuts);
  await writer.finish({ size: content.length, sha256: sha256(content) });
}

async function listAll(store: LogStore, filter: Partial<AttemptKey>): Promise<string[]> {
  const out: string[] = [];
  for await (const k of store.list(filter)) out.push(id(k));
  return out.sort();
}

/** A finished log in a local file, as upload() takes it (the caller removes `dir`). */
async function localLog(dir: string, name: string, content: Buffer): Promise<LocalLogFile> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  return { path: file, size: content.length, sha256: sha256(content) };
}

function id(k: AttemptKey): string {
  return `${k.dagId}|${k.runId}|${k.taskId}|${k.mapIndex}|${k.tryNumber}`;
}

/** The optional parts of the contract, for stores that have what they test. */
export interface ContractOptions {
  /**
   * A fresh, empty store whose writers flush by themselves once `bytes` bytes are buffered (the
   * blob stores' `flushBytes` / `chunkSize`; the suite asks for 8 to 40 bytes). Without it the
   * automatic-flush tests skip.
   */
  withFlushBytes?: (bytes: number) => Promise<StoreFixture>;
}

/** Closes a fixture's store and cleans up after it. */
async function release(fixture: StoreFixture): Promise<void> {
  await fixture.store.close();
  await fixture.cleanup?.();
}

/** Runs `test` on the fixture's store, then releases the fixture whatever the outcome. */
async function withFixture(fixture: StoreFixture, test: (store: LogStore) => Promise<void>) {
  try {
    await test(fixture.store);
  } finally {
    await release(fixture);
  }
}

/** True when `bytes` is valid UTF-8 that does not end inside a character. */
function wholeCharacters(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/**
 * Declares, with vitest's `describe`/`it`, the behaviour every LogStore promises: byte-exact
 * round trips (empty logs, CRLF, a 5 MiB line, multi-byte characters cut by flushes), reads from
 * any offset and up to an `end`, NotFoundError/OffsetOutOfRangeError, writers that resume at the
 * committed offset after a crash or an abort, finish() verifying size and sha256, listing by
 * dag/run/task/map index, deleting, and a fast-check property over content, flush points and
 * offsets. Call it at the top level of a test file, once per store configuration:
 *
 * ```ts
 * import { describeStoreContract } from '@tasklog/core/testing';
 *
 * describeStoreContract('MyStore', async () => {
 *   const store = new MyStore({ bucket: await freshBucket() });
 *   return { store, cleanup: () => dropBucket(store) };
 * });
 * ```
 *
 * @param name Names the suite in the report: `LogStore contract: <name>`.
 * @param setup Makes a fresh store per test, empty of the attempts the suite writes (dags
 *   `contract_dag`, `etl`, `etl_other`, `reports`); a new prefix, bucket, index or log name per
 *   call on one shared server is the cheap way. It is also called once while the suite is
 *   collected, to read the store's capabilities; the suite closes every store it gets and then
 *   calls the fixture's `cleanup`.
 * @param options Optional parts of the contract, see {@link ContractOptions}.
 *
 * What the store declares decides what runs: `capabilities.liveAppend` the tests that read a
 * running attempt, `sweep` and `upload` (both optional on LogStore) the tests of those methods.
 * Everything else applies to every store. Some tests move megabytes; give the suite a test
 * timeout of about a minute for a store behind a network emulator. Needs vitest and fast-check,
 * optional peer dependencies of @tasklog/core.
 */
export function describeStoreContract(
  name: string,
  setup: () => Promise<StoreFixture>,
  options: ContractOptions = {},
): void {
  describe(`LogStore contract: ${name}`, async () => {
    const probe = await setup();
    const capabilities = probe.store.capabilities;
    const canSweep = typeof probe.store.sweep === 'function';
    const canUpload = typeof probe.store.upload === 'function';
    await release(probe);

    let fixture: StoreFixture;
    let store: LogStore;
    beforeEach(async () => {
      fixture = await setup();
      store = fixture.store;
    });
    afterEach(async () => {
      await release(fixture);
    });

    describe('round trip', () => {
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
      it('makes read throw NotFoundError', async () => {
        await expect(readAll(store, key({ taskId: 'never_ran' }))).rejects.toBeInstanceOf(
          NotFoundError,
        );
      });

      it('makes stat return undefined', async () => {
        expect(await store.stat(key({ taskId: 'never_ran' }))).toBeUndefined();
      });
    });

    describe('writers', () => {
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
      it('reports its flushed size as not complete, then complete after finish', async () => {
        const writer = await store.openWriter(key());
        await writer.append(Buffer.from('first\n'));
        await writer.flush();
        await writer.append(Buffer.from('unflushed'));
        expect(await store.stat(key())).toMatchObject({ size: 6, complete: false });
        await writer.finish({ size: 15, sha256: sha256(Buffer.from('first\nunflushed')) });
        expect(await store.stat(key())).toMatchObject({ size: 15, complete: true });
      });

      it.skipIf(!capabilities.liveAppend)(
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

      it.skipIf(!capabilities.liveAppend)(
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

    describe('listing', () => {
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

    describe('sweeping', () => {
      it.skipIf(!canSweep)(
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

      it.skipIf(!canSweep)(
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

      it.skipIf(!canSweep)('treats an attempt it never saw as nothing to do', async () => {
        await expect(store.sweep!(key({ taskId: 'never_ran' }))).resolves.toBeUndefined();
        expect(await store.stat(key({ taskId: 'never_ran' }))).toBeUndefined();
      });
    });

    describe('uploading a finished file', () => {
      let dir: string;
      beforeEach(async () => {
        dir = await mkdtemp(path.join(tmpdir(), 'tasklog-contract-upload-'));
      });
      afterEach(async () => {
        await rm(dir, { recursive: true, force: true });
      });

      it.skipIf(!canUpload)(
        'refuses to store over a complete log with ConflictError and keeps the old one',
        async () => {
          const old = Buffer.from('first version\n');
          await writeLog(store, key(), old);
          const file = await localLog(dir, 'new.log', Buffer.from('second version\n'));
          await expect(store.upload!(key(), file)).rejects.toBeInstanceOf(ConflictError);
          expect((await readAll(store, key())).equals(old)).toBe(true);
        },
      );

      it.skipIf(!canUpload)('replaces a complete log with upload({ replace: true })', async () => {
        const old = Buffer.from('deferred task, first run\n');
        await writeLog(store, key(), old);
        const grown = Buffer.concat([old, Buffer.from('resumed after the deferral é\n')]);
        await store.upload!(key(), await localLog(dir, 'grown.log', grown), { replace: true });
        expect((await readAll(store, key())).equals(grown)).toBe(true);
        expect(await store.stat(key())).toMatchObject({ size: grown.length, complete: true });
        expect(await listAll(store, { dagId: key().dagId })).toEqual([id(key())]);
      });

      it.skipIf(!canUpload)('stores a log with replace when there was none', async () => {
        const content = Buffer.from('only version\n');
        await store.upload!(key(), await localLog(dir, 'only.log', content), { replace: true });
        expect((await readAll(store, key())).equals(content)).toBe(true);
      });
    });

    describe('property', () => {
      let run = 0;
      it('returns the written bytes for any content, flush points and read offset', async () => {
        await fc.assert(
          fc.asyncProperty(
            fc.uint8Array({ maxLength: 2048 }),
            fc.array(fc.nat(), { maxLength: 8 }),
            fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
            async (bytes, rawCuts, rawOffsets) => {
              const content = Buffer.from(bytes);
              const cuts = [...new Set(rawCuts.map((c) => c % (content.length + 1)))].sort(
                (a, b) => a - b,
              );
              const k = key({ taskId: `prop_${run++}` });
              const writer = await store.openWriter(k);
              await appendInPieces(writer, content, cuts);
              if (capabilities.liveAppend) {
                for (const raw of rawOffsets) {
                  const offset = raw % (content.length + 1);
                  expect(
                    (await readAll(store, k, { offset })).equals(content.subarray(offset)),
                  ).toBe(true);
                }
              }
              await writer.finish({ size: content.length, sha256: sha256(content) });
              for (const raw of rawOffsets) {
                const offset = raw % (content.length + 1);
                expect((await readAll(store, k, { offset })).equals(content.subarray(offset))).toBe(
                  true,
                );
              }
            },
          ),
          { numRuns: 40 },
        );
      });
    });

    describe('automatic flushes of a full buffer', () => {
      const { withFlushBytes } = options;
      /** Appends `content` in `step`-byte pieces; returns committedOffset after each append. */
      async function appendStepwise(writer: LogWriter, content: Buffer, step: number) {
        const committed: number[] = [];
        for (let at = 0; at < content.length; at += step) {
          await writer.append(content.subarray(at, at + step));
          committed.push(writer.committedOffset);
        }
        return committed;
      }

      it.skipIf(!withFlushBytes)(
        'end on the last line end and keep the unfinished line buffered',
        async () => {
          await withFixture(await withFlushBytes!(40), async (store) => {
            const lines = Array.from(
              { length: 24 },
              (_, i) => `${i} é€ line${'x'.repeat(i % 7)}\n`,
            );
            const content = Buffer.from(`${lines.join('')}unfinished 𝄞`);
            const writer = await store.openWriter(key());
            const committed = await appendStepwise(writer, content, 7);
            const cuts = [...new Set(committed)].filter((c) => c > 0);
            expect(cuts.length).toBeGreaterThan(3);
            for (const cut of cuts) expect(content[cut - 1]).toBe(0x0a);
            const stored = writer.committedOffset;
            expect(await store.stat(key())).toMatchObject({
              size: stored,
              complete: false,
            });
            if (store.capabilities.liveAppend) {
              expect((await readAll(store, key())).equals(content.subarray(0, stored))).toBe(true);
            }
            await writer.finish({ size: content.length, sha256: sha256(content) });
            expect((await readAll(store, key())).equals(content)).toBe(true);
          });
        },
      );

      it.skipIf(!withFlushBytes)(
        'cut a line longer than the buffer only between characters',
        async () => {
          await withFixture(await withFlushBytes!(10), async (store) => {
            const content = Buffer.from(`${'é€𝄞日'.repeat(12)}\nend`);
            const writer = await store.openWriter(key());
            // 3-byte pieces put the end of the buffer inside a character again and again.
            const committed = await appendStepwise(writer, content, 3);
            const cuts = [...new Set(committed)].filter((c) => c > 0);
            expect(cuts.length).toBeGreaterThan(3);
            for (const cut of cuts) expect(wholeCharacters(content.subarray(0, cut))).toBe(true);
            await writer.finish({ size: content.length, sha256: sha256(content) });
            expect((await readAll(store, key())).equals(content)).toBe(true);
          });
        },
      );

      it.skipIf(!withFlushBytes)(
        'leave flush() making every appended byte durable, half a character included',
        async () => {
          await withFixture(await withFlushBytes!(8), async (store) => {
            const content = Buffer.from('one\ntwo three €');
            const writer = await store.openWriter(key());
            await writer.append(content.subarray(0, 10));
            expect(writer.committedOffset).toBe(4); // "one\n" stored, "two th" waits for its line end
            const half = content.length - 1; // inside the €
            await writer.append(content.subarray(10, half));
            expect(await writer.flush()).toBe(half);
            expect(await store.stat(key())).toMatchObject({ size: half, complete: false });
            await writer.append(content.subarray(half));
            await writer.finish({ size: content.length, sha256: sha256(content) });
            expect((await readAll(store, key())).equals(content)).toBe(true);
          });
        },
      );
    });
  });
}
