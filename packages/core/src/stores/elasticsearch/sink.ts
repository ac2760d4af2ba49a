import { createHash, type Hash } from 'node:crypto';
import type { AttemptKey } from '../../attempt-key.js';
import { BackendUnavailableError, InvalidInputError, type TasklogError } from '../../errors.js';
import type { LogChunk } from '../../store.js';
import { type LogRecord, recordPayload } from '../shared/log-records.js';
import type {
  OutgoingBatch,
  RecordCut,
  RecordLimits,
  RecordRetry,
  RecordSink,
} from '../shared/record-writer.js';
import type { Context } from './client.js';
import type { LineDocumentBuilder } from './documents.js';
import { esError, TRANSIENT_STATUS } from './errors.js';
import type { ResolvedElasticsearchOptions } from './options.js';

type SinkOptions = Pick<
  ResolvedElasticsearchOptions,
  | 'index'
  | 'bulkBytes'
  | 'bulkCount'
  | 'maxLineBytes'
  | 'retry'
  | 'messageField'
  | 'endOfLogMark'
  | 'hostField'
  | 'hostName'
>;

/** One document as an NDJSON `index` action and source line, each ended by `\n`, in UTF-8. */
export interface QueuedDocument {
  lines: Buffer;
  bytes: number;
  /** Offset just past the log bytes it stores; undefined for the start marker and the end. */
  end: number | undefined;
  /** Its byte offset in the log, for messages (-1: the start marker). */
  offset: number;
}

/** Items of a `_bulk` the cluster rejected with 429 or 5xx, to be sent again. */
class RejectedItemsError extends Error {
  constructor(readonly count: number) {
    super(`Elasticsearch rejected ${count} document(s) (429/5xx per item)`);
    this.name = 'RejectedItemsError';
  }
}

/**
 * One attempt's log as the RecordWriter's sink: LineDocumentBuilder makes each record a
 * document, and batches go out as `_bulk` requests of at most `bulkBytes` and `bulkCount` (a
 * larger document goes alone). A failed request is sent again whole by `ctx.call`, which
 * retries every request of the store (the ids make that harmless even when the first one was
 * applied); items rejected with 429 or 5xx are the writer's to retry, alone, with backoff and
 * full jitter. A document the index refuses (mapping) is an InvalidInputError naming its offset.
 */
export class ElasticsearchSink implements RecordSink<QueuedDocument> {
  readonly name: string;
  readonly limits: RecordLimits;
  readonly retry: RecordRetry;
  /** Resending is harmless: the ids make a document stored twice one document. */
  readonly afterFailedBatch = 'resend';
  #lastTimestamp: number;
  /** Bulk requests sent without a refresh since the last one that waited for it. */
  #unrefreshed = false;
  readonly #builder: LineDocumentBuilder;
  readonly #readLog: () => AsyncIterable<LogChunk>;
  readonly #fixed: { action: string; head: string; tail: string };
  /** sha1 of `log_id` and a NUL, copied for each document's `_id`. */
  readonly #idHash: Hash;
  #isoAt = Number.NaN;
  #iso = '';

  /**
   * @param options.builder makes each record a document (a resumed writer's holds the unshown
   *   end of the last line).
   * @param options.readLog the store's read of the whole log, for `readBack`.
   */
  constructor(
    private readonly ctx: Context,
    private readonly o: SinkOptions,
    private readonly key: AttemptKey,
    private readonly logId: string,
    lastTimestamp: number,
    options: { builder: LineDocumentBuilder; readLog: () => AsyncIterable<LogChunk> },
  ) {
    this.name = `log ${logId} in index ${o.index}`;
    this.limits = {
      maxBatchCount: o.bulkCount,
      maxBatchBytes: o.bulkBytes,
      maxPieceBytes: o.maxLineBytes,
    };
    // A failed request was retried by ctx.call already; only rejected items are retried here.
    this.retry = {
      ...o.retry,
      retryable: (err) => err instanceof RejectedItemsError,
    };
    this.#lastTimestamp = lastTimestamp;
    this.#builder = options.builder;
    this.#readLog = options.readLog;
    this.#fixed = this.#fixedJson();
    this.#idHash = createHash('sha1').update(logId).update('\0');
  }

  /** A document's `_id`: sha1(log_id, NUL, offset or marker), so a resent document overwrites. */
  #docId(suffix: string): string {
    return this.#idHash.copy().update(suffix).digest('hex');
  }

  /** Marks a fresh attempt as existing (offset 0: Airflow's `offset > 0` never sees it). */
  startMarker(): QueuedDocument {
    const lines = this.#documentLines(
      { offset: 0, length: 0, start: true },
      this.#docId('start'),
      this.#timestamp(),
    );
    return { lines, bytes: lines.length, end: undefined, offset: -1 };
  }

  encode(records: LogRecord[], cut: RecordCut): QueuedDocument[] {
    // A flush sends every appended byte, an incomplete trailing UTF-8 character included: in the
    // same document as the text before it (Airflow would show a document of its own as a line).
    const docs = cut === 'flush' ? joinPieces(records) : records;
    return docs.map((r) => {
      const lines = this.#documentLines(
        this.#builder.build(r),
        this.#docId(String(r.offset)),
        this.#timestamp(),
      );
      return { lines, bytes: lines.length, end: r.offset + r.length, offset: r.offset };
    });
  }

  encodeEnd(size: number, sha256: string): QueuedDocument {
    const lines = this.#documentLines(
      {
        offset: size + 1,
        length: 0,
        [this.o.messageField]: this.o.endOfLogMark,
        end: true,
        sha256,
      },
      this.#docId('end'),
      this.#timestamp(),
    );
    return { lines, bytes: lines.length, end: undefined, offset: size };
  }

  /** One `_bulk`; the last of a flush waits for a refresh, so what it stored is readable. */
  async send(batch: OutgoingBatch<QueuedDocument>, last: boolean): Promise<void> {
    const { o, ctx } = this;
    const res = await ctx
      .call(() =>
        ctx.client.bulk({
          // One buffer: the client sends it as it is, instead of joining and encoding strings.
          operations: Buffer.concat(batch.left.map((q) => q.lines)) as never,
          ...(last ? { refresh: 'wait_for' as const } : {}),
          // Only what is checked: a full answer is ~200 bytes per document to parse.
          filter_path: ['errors', 'items.*.status', 'items.*.error'],
        }),
      )
      .catch((err: unknown) => {
        throw esError(err, o.index, this.logId, 'write');
      });
    this.#unrefreshed = !last;
    if (!res.errors) {
      batch.left = [];
      return;
    }
    const retry: QueuedDocument[] = [];
    res.items.forEach((item, i) => {
      const r = Object.values(item)[0] as
        | { status: number; error?: { type?: string; reason?: string } }
        | undefined;
      if (!r || r.status < 300) return;
      const q = batch.left[i]!;
      if (TRANSIENT_STATUS.has(r.status)) {
        retry.push(q);
        return;
      }
      const what = q.offset < 0 ? 'the start marker' : `the document at byte offset ${q.offset}`;
      throw new InvalidInputError(
        `index ${o.index} refused ${what} of log ${this.logId}: ${r.error?.type ?? r.status}: ${r.error?.reason ?? ''}`.trim(),
        { cause: r.error },
      );
    });
    batch.left = retry;
    if (retry.length > 0) throw new RejectedItemsError(retry.length);
  }

  failure(err: unknown): TasklogError {
    if (err instanceof RejectedItemsError) {
      return new BackendUnavailableError(
        `Elasticsearch kept rejecting ${err.count} document(s) of log ${this.logId} (429/5xx per item) after ${this.retry.maxAttempts} attempts`,
        { cause: err },
      );
    }
    return esError(err, this.o.index, this.logId, 'write');
  }

  /** Documents sent from append() are not refreshed; a flush makes them readable. */
  async makeReadable(): Promise<void> {
    if (!this.#unrefreshed) return;
    const { o, ctx } = this;
    await ctx
      .call(() => ctx.client.indices.refresh({ index: o.index }))
      .catch((err: unknown) => {
        throw esError(err, o.index, this.logId, 'refresh');
      });
    this.#unrefreshed = false;
  }

  /** Size and sha256 of the stored log, read back (a resumed writer's finish). */
  async readBack(): Promise<{ size: number; sha256: string }> {
    try {
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of this.#readLog()) {
        hash.update(chunk.bytes);
        size += chunk.bytes.length;
      }
      return { size, sha256: hash.digest('hex') };
    } catch (err) {
      throw esError(err, this.o.index, this.logId, 'verify');
    }
  }

  /**
   * One document as an NDJSON `index` action and source line. What every document of the
   * attempt repeats (index, log_id, host, Airflow's json fields) is serialised once.
   */
  #documentLines(fields: Record<string, unknown>, id: string, timestamp: number): Buffer {
    const fixed = this.#fixed;
    const body = JSON.stringify(fields);
    return Buffer.from(
      `${fixed.action}${id}"}}\n${fixed.head}${body.slice(1, -1)},"@timestamp":"${this.#isoTime(timestamp)}",${fixed.tail}}\n`,
    );
  }

  /** The JSON every document of this attempt shares, around its own fields. */
  #fixedJson(): { action: string; head: string; tail: string } {
    const { key, o } = this;
    const tail = JSON.stringify({
      [o.hostField]: o.hostName,
      dag_id: key.dagId,
      task_id: key.taskId,
      run_id: key.runId,
      map_index: key.mapIndex,
      try_number: key.tryNumber,
    });
    return {
      action: `{"index":{"_index":${JSON.stringify(o.index)},"_id":"`,
      head: `{"log_id":${JSON.stringify(this.logId)},`,
      tail: tail.slice(1, -1),
    };
  }

  /** `@timestamp` as ISO 8601; documents of the same millisecond share one string. */
  #isoTime(timestamp: number): string {
    if (timestamp !== this.#isoAt) {
      this.#isoAt = timestamp;
      this.#iso = new Date(timestamp).toISOString();
    }
    return this.#iso;
  }

  #timestamp(): number {
    // Never earlier than the previous document, so @timestamp order is offset order.
    this.#lastTimestamp = Math.max(Date.now(), this.#lastTimestamp);
    return this.#lastTimestamp;
  }
}

/** Consecutive pieces of one unfinished line (RecordSplitter.flush) as one record. */
function joinPieces(records: LogRecord[]): LogRecord[] {
  if (records.length < 2) return records;
  const bytes = Buffer.concat(records.map(recordPayload));
  return [{ offset: records[0]!.offset, length: bytes.length, base64: bytes.toString('base64') }];
}
