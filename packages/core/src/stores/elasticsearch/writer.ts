import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@elastic/elasticsearch';
import type { AttemptKey } from '../../attempt-key.js';
import {
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  InvalidInputError,
} from '../../errors.js';
import { backoffDelay } from '../../retry.js';
import type { LogWriter } from '../../store.js';
import { type LogRecord, RecordSplitter } from '../shared/log-records.js';
import type { LineDocumentBuilder } from './documents.js';
import { esError, TRANSIENT_STATUS } from './errors.js';
import type { ElasticsearchStore } from './store.js';

/** The store's lazily built client, shared with its writers. */
export interface Context {
  client: Client;
}

/** What a writer has queued: one document as NDJSON, and the log bytes it ends at. */
interface Queued {
  lines: string;
  bytes: number;
  end: number;
  offset: number;
}

/**
 * Appends to one attempt's log: RecordSplitter cuts the bytes into lines (a line over
 * `maxLineBytes` into pieces), LineDocumentBuilder makes each a document, and the queue goes out
 * in `_bulk` requests of at most `bulkBytes` and `bulkCount` (a larger document goes alone).
 * `committedOffset` moves only when a request's every item is stored.
 */
export class ElasticsearchLogWriter implements LogWriter {
  #committed: number;
  readonly #splitter: RecordSplitter;
  #queue: Queued[] = [];
  #queuedBytes = 0;
  #lastTimestamp: number;
  /** Bulk requests sent without a refresh since the last one that waited for it. */
  #unrefreshed = false;
  #state: 'open' | 'finished' | 'aborted' = 'open';
  #tail: Promise<unknown> = Promise.resolve();
  readonly #hash = createHash('sha256');
  readonly #sawAll: boolean;
  readonly #builder: LineDocumentBuilder;

  constructor(
    private readonly store: ElasticsearchStore,
    private readonly ctx: Context,
    private readonly key: AttemptKey,
    private readonly logId: string,
    committed: number,
    lastTimestamp: number,
    options: { builder: LineDocumentBuilder },
  ) {
    this.#committed = committed;
    this.#sawAll = committed === 0;
    this.#splitter = new RecordSplitter(committed, store.maxLineBytes);
    this.#lastTimestamp = lastTimestamp;
    this.#builder = options.builder;
  }

  get committedOffset(): number {
    return this.#committed;
  }

  get offset(): number {
    return this.#splitter.offset + this.#splitter.pending;
  }

  /** Marks a fresh attempt as existing (offset 0: Airflow's `offset > 0` never sees it). */
  async writeStartMarker(): Promise<void> {
    const lines = this.store.documentLines(
      this.key,
      this.logId,
      { offset: 0, length: 0, start: true },
      docId(this.logId, 'start'),
      this.#timestamp(),
    );
    await this.#send([{ lines, bytes: lines.length, end: this.#committed, offset: -1 }], true);
  }

  /** Throws ConflictError after finish/abort; InvalidInputError, BackendUnavailableError. */
  append(bytes: Uint8Array): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      if (bytes.length === 0) return;
      if (this.#sawAll) this.#hash.update(bytes);
      this.#enqueue(this.#splitter.push(bytes));
      while (
        this.#queue.length >= this.store.bulkCount ||
        this.#queuedBytes >= this.store.bulkBytes
      ) {
        await this.#sendBatch(false);
      }
    });
  }

  flush(): Promise<number> {
    return this.#serial(async () => {
      this.#assertOpen();
      // Every appended byte, an incomplete trailing UTF-8 character included: in the same
      // document as the text before it (Airflow would show a document of its own as a line).
      this.#enqueue(joinPieces(this.#splitter.flush()));
      await this.#sendAll();
      return this.#committed;
    });
  }

  finish(expected: { size: number; sha256: string }): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
        throw new InvalidInputError(`expected size must be an integer >= 0, got ${expected.size}`);
      }
      if (!/^[0-9a-fA-F]{64}$/.test(expected.sha256)) {
        throw new InvalidInputError('expected sha256 must be 64 hex digits');
      }
      const want = { size: expected.size, sha256: expected.sha256.toLowerCase() };
      this.#enqueue(this.#splitter.end());
      await this.#sendAll();
      const where = `log ${this.logId} in index ${this.store.index}`;
      const got = this.#sawAll
        ? { size: this.#committed, sha256: this.#hash.copy().digest('hex') }
        : await this.store.readBack(this.key).catch((err: unknown) => {
            throw esError(err, this.store.index, this.logId, 'verify');
          });
      if (got.size !== want.size || got.sha256 !== want.sha256) {
        throw new IntegrityError(
          `${where} has ${got.size} bytes with sha256 ${got.sha256}, expected ${want.size} bytes with sha256 ${want.sha256}; no end record written`,
        );
      }
      const lines = this.store.documentLines(
        this.key,
        this.logId,
        {
          offset: want.size + 1,
          length: 0,
          [this.store.messageField]: this.store.endOfLogMark,
          end: true,
          sha256: want.sha256,
        },
        docId(this.logId, 'end'),
        this.#timestamp(),
      );
      await this.#send([{ lines, bytes: lines.length, end: want.size, offset: want.size }], true);
      this.#state = 'finished';
    });
  }

  async abort(): Promise<void> {
    if (this.#state === 'open') this.#state = 'aborted';
    this.#queue = [];
    this.#queuedBytes = 0;
    await this.#tail;
  }

  #timestamp(): number {
    // Never earlier than the previous document, so @timestamp order is offset order.
    this.#lastTimestamp = Math.max(Date.now(), this.#lastTimestamp);
    return this.#lastTimestamp;
  }

  #enqueue(records: LogRecord[]): void {
    for (const r of records) {
      const lines = this.store.documentLines(
        this.key,
        this.logId,
        this.#builder.build(r, payloadOf(r)),
        docId(this.logId, String(r.offset)),
        this.#timestamp(),
      );
      const bytes = Buffer.byteLength(lines) + 2;
      this.#queue.push({ lines, bytes, end: r.offset + r.length, offset: r.offset });
      this.#queuedBytes += bytes;
    }
  }

  /** Sends everything queued; the last request waits for a refresh so it is readable. */
  async #sendAll(): Promise<void> {
    if (this.#queue.length === 0) {
      if (this.#unrefreshed) {
        await this.store.call(() => this.ctx.client.indices.refresh({ index: this.store.index }));
        this.#unrefreshed = false;
      }
      return;
    }
    while (this.#queue.length > 0) await this.#sendBatch(true);
  }

  /** Sends the head of the queue, within the byte and count limits. */
  async #sendBatch(refreshIfLast: boolean): Promise<void> {
    let n = 0;
    let bytes = 0;
    while (
      n < this.#queue.length &&
      n < this.store.bulkCount &&
      (n === 0 || bytes + this.#queue[n]!.bytes <= this.store.bulkBytes)
    ) {
      bytes += this.#queue[n]!.bytes;
      n++;
    }
    const batch = this.#queue.slice(0, n);
    const last = n === this.#queue.length;
    await this.#send(batch, refreshIfLast && last);
    this.#queue = this.#queue.slice(n);
    this.#queuedBytes -= bytes;
    this.#committed = Math.max(this.#committed, batch.at(-1)!.end);
  }

  /**
   * One `_bulk` until every item is stored: a failed request is sent again whole (the ids make
   * that harmless even when the first one was applied), items rejected with 429 or 5xx are sent
   * again alone, with backoff and full jitter. A document the index refuses (mapping) is an
   * InvalidInputError naming its offset.
   */
  async #send(batch: Queued[], refresh: boolean): Promise<void> {
    const { store, ctx } = this;
    const policy = store.retryPolicy;
    let pending = batch;
    let rejected = 0;
    for (let attempt = 1; ; attempt++) {
      const res = await store
        .call(() =>
          ctx.client.bulk({
            operations: pending.map((q) => q.lines) as never,
            ...(refresh ? { refresh: 'wait_for' as const } : {}),
            // Only what is checked: a full answer is ~200 bytes per document to parse.
            filter_path: ['errors', 'items.*.status', 'items.*.error'],
          }),
        )
        .catch((err: unknown) => {
          throw esError(err, store.index, this.logId, 'write');
        });
      if (!res.errors) break;
      const retry: Queued[] = [];
      res.items.forEach((item, i) => {
        const r = Object.values(item)[0] as
          | { status: number; error?: { type?: string; reason?: string } }
          | undefined;
        if (!r || r.status < 300) return;
        const q = pending[i]!;
        if (TRANSIENT_STATUS.has(r.status)) {
          retry.push(q);
          return;
        }
        const what = q.offset < 0 ? 'the start marker' : `the document at byte offset ${q.offset}`;
        throw new InvalidInputError(
          `index ${store.index} refused ${what} of log ${this.logId}: ${r.error?.type ?? r.status}: ${r.error?.reason ?? ''}`.trim(),
          { cause: r.error },
        );
      });
      if (retry.length === 0) break;
      rejected = retry.length;
      if (attempt >= policy.maxAttempts) {
        throw new BackendUnavailableError(
          `Elasticsearch kept rejecting ${rejected} document(s) of log ${this.logId} (429/5xx per item) after ${attempt} attempts`,
        );
      }
      pending = retry;
      await sleep(backoffDelay(attempt - 1, policy));
    }
    if (refresh) this.#unrefreshed = false;
    else this.#unrefreshed = true;
  }

  #assertOpen(): void {
    if (this.#state !== 'open') {
      throw new ConflictError(
        `writer of log ${this.logId} in index ${this.store.index} is already ${this.#state}`,
      );
    }
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(op, op);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

/** A record's bytes without the line end it covers. */
function payloadOf(record: LogRecord): Buffer {
  return record.base64 !== undefined
    ? Buffer.from(record.base64, 'base64')
    : Buffer.from(record.text ?? '', 'utf8');
}

/** Consecutive pieces of one unfinished line (RecordSplitter.flush) as one record. */
function joinPieces(records: LogRecord[]): LogRecord[] {
  if (records.length < 2) return records;
  const bytes = Buffer.concat(records.map(payloadOf));
  return [{ offset: records[0]!.offset, length: bytes.length, base64: bytes.toString('base64') }];
}

function docId(logId: string, suffix: string): string {
  return createHash('sha1').update(logId).update('\0').update(suffix).digest('hex');
}
