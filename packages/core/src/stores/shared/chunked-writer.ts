import { createHash, type Hash } from 'node:crypto';
import { ConflictError, type TasklogError } from '../../errors.js';
import type { LogWriter } from '../../store.js';
import { ChunkBuffer } from './chunk-buffer.js';
import { SerialQueue } from './serial-queue.js';
import { validateExpected } from './store-checks.js';

/** The log `finish()` was told to expect: size, and sha256 in lower-case hex. */
export interface ExpectedLog {
  readonly size: number;
  readonly sha256: string;
}

/** What the writer itself knows about the log when it finishes, every byte flushed. */
export interface WrittenLog {
  /** Bytes stored, by this writer and any it resumed from. */
  readonly committed: number;
  /**
   * sha256 of the whole log, only when this writer saw every byte of it (it was opened at 0) and
   * was asked to keep one (`ChunkedWriterOptions.sha256`). A resumed writer has none: its sink
   * must hash what it stores if it wants to trust the log.
   */
  readonly sha256?: string;
}

/**
 * The backend half of a blob store's writer (local folder, S3, GCS): where a chunk goes and how
 * the chunks become the finished log. The buffering, ordering, state and argument checks are
 * ChunkedWriter's.
 */
export interface ChunkSink {
  /** The log as error messages name it, e.g. `s3://bucket/key`. */
  readonly where: string;
  /**
   * Stores `bytes` as the chunk that starts at byte `offset` of the log, durably and readable.
   * After a failure the writer retries with the same offset and the same bytes (see ChunkBuffer).
   */
  putChunk(offset: number, bytes: Buffer): Promise<void>;
  /**
   * Makes the stored chunks the complete log; every appended byte is stored when it is called.
   * Throws ConflictError when the log is already complete, IntegrityError when it is not `want`
   * (the chunks stay in place: they are still the log).
   */
  finish(want: ExpectedLog, own: WrittenLog): Promise<void>;
  /** Removes the chunks of the log `finish()` completed; its failure is ignored. */
  removeChunks(): Promise<void>;
  /**
   * The backend's error as a tasklog error, `action` being what failed. Without it the errors of
   * `putChunk` and `finish` pass as they are: the sink maps them itself.
   */
  mapError?(err: unknown, action: 'flush' | 'finish'): TasklogError;
}

export interface ChunkedWriterOptions {
  /** Bytes an earlier writer stored: this one continues there. */
  committed: number;
  /** Buffered bytes at which append() stores a chunk by itself. */
  flushBytes: number;
  /**
   * Keep a running sha256 while this writer sees every byte (opened at 0), for the sink to check
   * the log without reading it back (`WrittenLog.sha256`).
   */
  sha256: boolean;
}

/**
 * The writer of the chunked blob stores, one implementation for all of them: bytes are buffered
 * and stored as immutable chunks by the store's `ChunkSink`, and `finish()` has the sink turn them
 * into the complete log.
 *
 * - Operations run one at a time, in call order, even if a caller does not await each one.
 * - Once `flushBytes` are buffered, append() stores a chunk that ends on the last line end (see
 *   ChunkBuffer); a failed automatic flush keeps the bytes buffered and fails that append.
 * - After finish() or abort(), every call throws ConflictError.
 */
export class ChunkedWriter implements LogWriter {
  readonly #sink: ChunkSink;
  readonly #flushBytes: number;
  #committed: number;
  readonly #buffer = new ChunkBuffer();
  #state: 'open' | 'finished' | 'aborted' = 'open';
  readonly #ops = new SerialQueue();
  /** sha256 of every byte since offset 0, when this writer sees them all (it started at 0). */
  readonly #hash: Hash | undefined;

  constructor(sink: ChunkSink, options: ChunkedWriterOptions) {
    this.#sink = sink;
    this.#flushBytes = options.flushBytes;
    this.#committed = options.committed;
    this.#hash = options.sha256 && options.committed === 0 ? createHash('sha256') : undefined;
  }

  get committedOffset(): number {
    return this.#committed;
  }

  get offset(): number {
    return this.#committed + this.#buffer.size;
  }

  /** Throws ConflictError after finish/abort, or the sink's error of a failed automatic flush. */
  append(bytes: Uint8Array): Promise<void> {
    return this.#ops.run(async () => {
      this.#assertOpen();
      if (bytes.length === 0) return;
      // Copied: callers may reuse their buffer as soon as append resolves.
      const copy = Buffer.from(bytes);
      this.#buffer.push(copy);
      this.#hash?.update(copy);
      if (this.#buffer.size >= this.#flushBytes) await this.#flushNow('lines');
    });
  }

  flush(): Promise<number> {
    return this.#ops.run(async () => {
      this.#assertOpen();
      return this.#flushNow('all');
    });
  }

  /**
   * Flushes, then has the sink make the chunks the complete log and removes them. Throws
   * InvalidInputError for a malformed `expected`, IntegrityError (chunks kept), ConflictError,
   * and the sink's errors.
   */
  finish(expected: { size: number; sha256: string }): Promise<void> {
    return this.#ops.run(async () => {
      this.#assertOpen();
      validateExpected(expected);
      const want = { size: expected.size, sha256: expected.sha256.toLowerCase() };
      await this.#flushNow('all');
      const own: WrittenLog = {
        committed: this.#committed,
        ...(this.#hash ? { sha256: this.#hash.copy().digest('hex') } : {}),
      };
      try {
        await this.#sink.finish(want, own);
      } catch (err) {
        throw this.#sink.mapError ? this.#sink.mapError(err, 'finish') : err;
      }
      this.#state = 'finished';
      // The log is complete now. If removing the chunks fails, readers already prefer the
      // finished log, and delete() / the next openWriter() remove them.
      await this.#sink.removeChunks().catch(() => undefined);
    });
  }

  async abort(): Promise<void> {
    if (this.#state === 'open') this.#state = 'aborted';
    this.#buffer.clear();
    await this.#ops.idle();
  }

  /** `all`: every buffered byte (flush, finish); `lines`: while full, up to the last line end. */
  async #flushNow(mode: 'all' | 'lines'): Promise<number> {
    while (this.#buffer.size >= (mode === 'all' ? 1 : this.#flushBytes)) {
      const data = this.#buffer.next(mode);
      if (data.length === 0) break; // only the first bytes of one character: wait for the rest
      try {
        await this.#sink.putChunk(this.#committed, data);
      } catch (err) {
        throw this.#sink.mapError ? this.#sink.mapError(err, 'flush') : err;
      }
      this.#committed += data.length;
      this.#buffer.commit(data.length);
    }
    return this.#committed;
  }

  #assertOpen(): void {
    if (this.#state !== 'open') {
      throw new ConflictError(`writer of ${this.#sink.where} is already ${this.#state}`);
    }
  }
}
