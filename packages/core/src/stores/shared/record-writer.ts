import { createHash, type Hash } from 'node:crypto';
import {
  AbortedError,
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  type TasklogError,
} from '../../errors.js';
import { type RetryOptions, withRetry } from '../../retry.js';
import type { LogWriter } from '../../store.js';
import { type LogRecord, RecordSplitter } from './log-records.js';
import { SerialQueue } from './serial-queue.js';
import { validateExpected } from './store-checks.js';

/** A record a sink encoded (an event, a document, an entry), as the writer batches it. */
export interface SinkRecord {
  /** What it counts against `maxBatchBytes`: its encoded size and the service's per-record overhead. */
  readonly bytes: number;
  /** Offset just past the log bytes it stores; undefined for one that stores none (header, end). */
  readonly end: number | undefined;
}

/** The service's limits on one request, and the longest piece a line is cut into. */
export interface RecordLimits {
  /** Records per batch. */
  readonly maxBatchCount: number;
  /** Sum of `SinkRecord.bytes` per batch; a record larger than this goes alone. */
  readonly maxBatchBytes: number;
  /** The longest record RecordSplitter makes of a line. */
  readonly maxPieceBytes: number;
}

/** A batch on its way. The writer keeps it, and has it sent again, until every record is stored. */
export interface OutgoingBatch<R> {
  readonly records: readonly R[];
  /** The records not known to be stored yet; send() narrows it as it learns. */
  left: R[];
}

/** Why records are encoded: bytes appended, a flush of a running log, or the log's end. */
export type RecordCut = 'append' | 'flush' | 'end';

/** How sending a batch is retried: every try is one `send()`, with full-jitter backoff. */
export type RecordRetry = Pick<RetryOptions, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs'> & {
  retryable(err: unknown): boolean;
};

/**
 * What one record backend gives the writer: how the log becomes its records, and one try of
 * sending a batch of them.
 */
export interface RecordSink<R extends SinkRecord> {
  /** The log as messages name it, e.g. `log stream S in G`. */
  readonly name: string;
  readonly limits: RecordLimits;
  readonly retry: RecordRetry;
  /**
   * What a batch of records that could not be stored even after retries does to the writer:
   * `resend` keeps it, and the next flush sends it again first; `fail` fails the writer for good
   * (every later call throws BackendUnavailableError; a new writer resumes at committedOffset).
   */
  readonly afterFailedBatch: 'resend' | 'fail';
  /** The records for the splitter's records, in log order (a sink may keep state between calls). */
  encode(records: LogRecord[], cut: RecordCut): R[];
  /** The record that marks the log complete with its size and lower-case hex sha256. */
  encodeEnd(size: number, sha256: string): R;
  /**
   * Called once as each batch is formed, with the records the limits allow in it (at least one):
   * for a sink whose records get something per batch (timestamps). Returns how many of them the
   * batch takes, at least one.
   */
  stamp?(candidates: readonly R[]): number;
  /**
   * One try at storing `batch.left`. Resolves when all of it is stored; otherwise throws, having
   * narrowed `batch.left` to what is still to be stored when it knows. The next try gets the same
   * batch, and no other batch is sent before it is stored (or the writer aborted or failed for
   * good). `last`: the last batch of a flush or finish, whose records must be readable when it
   * resolves.
   */
  send(batch: OutgoingBatch<R>, last: boolean): Promise<void>;
  /** The last failure of sending records (or the end record) as a TasklogError with `cause`. */
  failure(err: unknown, sending: 'records' | 'end'): TasklogError;
  /** After a flush or finish sent everything: makes what earlier batches stored readable. */
  makeReadable?(): Promise<void>;
}

export interface LogDigest {
  size: number;
  sha256: string;
}

/** Where a writer starts. */
export interface RecordWriterStart {
  /** Bytes the backend holds contiguously from offset 0 (what earlier writers committed). */
  committed: number;
  /**
   * How finish() learns the sha256 of those first `committed` bytes when there are any: a hash
   * the store already fed them to (this writer goes on with it), or a read back of the stored
   * log at finish.
   */
  prefix?: Hash | ((size: number) => Promise<LogDigest>);
}

/**
 * The writer of every record store: RecordSplitter cuts the appended bytes into records (a line,
 * or a piece of a long one), the sink encodes them, and the queue goes out in batches within the
 * sink's limits, each retried with backoff until stored; committedOffset moves when a batch is.
 * append() sends while more than one batch is queued, so at most about one batch waits in
 * memory; flush() sends everything. finish() checks the stored log's size and sha256 (hashed
 * while appended, or read back after a resume) before it sends the end record. One operation
 * runs at a time, in call order.
 *
 * A batch that could not be stored even after retries makes the operation throw; the writer
 * keeps it and the next flush (or an append that fills another batch) sends it again first, or,
 * as the sink's `afterFailedBatch` says, the writer fails for good.
 */
export class RecordWriter<R extends SinkRecord> implements LogWriter {
  readonly #sink: RecordSink<R>;
  readonly #splitter: RecordSplitter;
  #queue: R[] = [];
  #inflight: OutgoingBatch<R> | undefined;
  #committed: number;
  /** sha256 of every byte of the log, when this writer has it (else `#readBack` at finish). */
  readonly #hash: Hash | undefined;
  readonly #readBack: ((size: number) => Promise<LogDigest>) | undefined;
  #state: 'open' | 'finished' | 'aborted' = 'open';
  /** Why the writer failed for good (`afterFailedBatch: 'fail'`). */
  #failed: TasklogError | undefined;
  readonly #ops = new SerialQueue();

  constructor(sink: RecordSink<R>, start: RecordWriterStart) {
    const { committed, prefix } = start;
    if (committed > 0 && prefix === undefined) {
      throw new RangeError('a writer that starts after committed bytes needs their `prefix`');
    }
    this.#sink = sink;
    this.#committed = committed;
    this.#splitter = new RecordSplitter(committed, sink.limits.maxPieceBytes);
    if (typeof prefix === 'function') {
      this.#hash = committed === 0 ? createHash('sha256') : undefined;
      this.#readBack = prefix;
    } else {
      this.#hash = prefix ?? createHash('sha256');
      this.#readBack = undefined;
    }
  }

  get committedOffset(): number {
    return this.#committed;
  }

  get offset(): number {
    return this.#splitter.offset + this.#splitter.pending;
  }

  /**
   * Sends `records` at once, ahead of the log's: a header or start marker the store writes when
   * it opens the log. They store no log bytes. Throws what a send throws.
   */
  sendFirst(records: R[]): Promise<void> {
    return this.#ops.run(async () => {
      this.#queue.unshift(...records);
      await this.#sendBatch(true, 'records');
    });
  }

  /**
   * Throws ConflictError after finish/abort; a failed send keeps the bytes queued (a later flush
   * retries them), so the caller must not append them again. BackendUnavailableError, and what
   * the sink throws.
   */
  append(bytes: Uint8Array): Promise<void> {
    return this.#ops.run(async () => {
      this.#assertOpen();
      if (bytes.length === 0) return;
      this.#hash?.update(bytes);
      this.#enqueue(this.#splitter.push(bytes), 'append');
      while (this.#batchLength() < this.#queue.length) await this.#sendBatch(false, 'records');
    });
  }

  flush(): Promise<number> {
    return this.#ops.run(async () => {
      this.#assertOpen();
      this.#enqueue(this.#splitter.flush(), 'flush');
      await this.#sendAll('records');
      return this.#committed;
    });
  }

  /**
   * InvalidInputError for a malformed `expected`; IntegrityError (no end record written) when
   * the stored log differs from it; ConflictError after finish/abort; BackendUnavailableError.
   */
  finish(expected: { size: number; sha256: string }): Promise<void> {
    return this.#ops.run(async () => {
      this.#assertOpen();
      validateExpected(expected);
      const want = { size: expected.size, sha256: expected.sha256.toLowerCase() };
      this.#enqueue(this.#splitter.end(), 'end');
      await this.#sendAll('records');
      const stored = this.#hash
        ? { size: this.#committed, sha256: this.#hash.copy().digest('hex') }
        : await this.#readBack!(this.#committed);
      if (stored.size !== want.size || stored.sha256 !== want.sha256) {
        throw new IntegrityError(
          `${this.#sink.name} has ${stored.size} bytes with sha256 ${stored.sha256}, expected ${want.size} bytes with sha256 ${want.sha256}; no end record written`,
        );
      }
      this.#queue.push(this.#sink.encodeEnd(want.size, want.sha256));
      await this.#sendAll('end');
      this.#state = 'finished';
    });
  }

  /** Drops what is not sent yet, after the operation under way (if any) ends. */
  async abort(): Promise<void> {
    if (this.#state === 'open') this.#state = 'aborted';
    this.#queue = [];
    await this.#ops.idle();
    this.#inflight = undefined;
  }

  #enqueue(records: LogRecord[], cut: RecordCut): void {
    for (const r of this.#sink.encode(records, cut)) this.#queue.push(r);
  }

  /** How many queued records the next batch may carry (count and bytes; the first always). */
  #batchLength(): number {
    const { maxBatchCount, maxBatchBytes } = this.#sink.limits;
    let bytes = 0;
    let n = 0;
    for (const r of this.#queue) {
      if (n >= maxBatchCount || (n > 0 && bytes + r.bytes > maxBatchBytes)) break;
      bytes += r.bytes;
      n++;
    }
    return n;
  }

  async #sendAll(sending: 'records' | 'end'): Promise<void> {
    while (this.#inflight || this.#queue.length > 0) await this.#sendBatch(true, sending);
    await this.#sink.makeReadable?.();
  }

  /** Sends the batch under way, else the head of the queue. */
  async #sendBatch(flushing: boolean, sending: 'records' | 'end'): Promise<void> {
    if (!this.#inflight) {
      const n = this.#batchLength();
      if (n === 0) return;
      const take = this.#sink.stamp ? this.#sink.stamp(this.#queue.slice(0, n)) : n;
      const records = this.#queue.splice(0, take);
      this.#inflight = { records, left: records };
    }
    const batch = this.#inflight;
    const last = flushing && this.#queue.length === 0;
    try {
      await withRetry(() => this.#sink.send(batch, last), this.#sink.retry);
    } catch (err) {
      const failure = this.#sink.failure(err, sending);
      if (
        this.#sink.afterFailedBatch === 'fail' &&
        sending === 'records' &&
        !(failure instanceof AbortedError)
      ) {
        this.#failed = new BackendUnavailableError(
          `writer of ${this.#sink.name} failed at offset ${this.#committed}; open a new writer to resume (${failure.message})`,
          { cause: failure },
        );
      }
      throw failure;
    }
    this.#inflight = undefined;
    for (const r of batch.records) {
      if (r.end !== undefined && r.end > this.#committed) this.#committed = r.end;
    }
  }

  #assertOpen(): void {
    if (this.#failed) throw this.#failed;
    if (this.#state !== 'open') {
      throw new ConflictError(`writer of ${this.#sink.name} is already ${this.#state}`);
    }
  }
}
