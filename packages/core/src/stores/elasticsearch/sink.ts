import { createHash } from 'node:crypto';
import type { AttemptKey } from '../../attempt-key.js';
import { BackendUnavailableError, InvalidInputError, type TasklogError } from '../../errors.js';
import type { LogChunk } from '../../store.js';
import type { LogRecord } from '../shared/log-records.js';
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

/** One document as an NDJSON `index` action and source line. */
export interface QueuedDocument {
  lines: string;
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
  }

  /** Marks a fresh attempt as existing (offset 0: Airflow's `offset > 0` never sees it). */
  startMarker(): QueuedDocument {
    const lines = this.#documentLines(
      { offset: 0, length: 0, start: true },
      docId(this.logId, 'start'),
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
        this.#builder.build(r, payloadOf(r)),
        docId(this.logId, String(r.offset)),
        this.#timestamp(),
      );
      return {
        lines,
        bytes: Buffer.byteLength(lines) + 2,
        end: r.offset + r.length,
        offset: r.offset,
      };
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
      docId(this.logId, 'end'),
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
          operations: batch.left.map((q) => q.lines) as never,
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

  /** One document as an NDJSON `index` action and source line. */
  #documentLines(fields: Record<string, unknown>, id: string, timestamp: number): string {
    const { key, o } = this;
    const doc = {
      log_id: this.logId,
      ...fields,
      [o.hostField]: o.hostName,
      '@timestamp': new Date(timestamp).toISOString(),
      dag_id: key.dagId,
      task_id: key.taskId,
      run_id: key.runId,
      map_index: key.mapIndex,
      try_number: key.tryNumber,
    };
    return `${JSON.stringify({ index: { _index: o.index, _id: id } })}\n${JSON.stringify(doc)}`;
  }

  #timestamp(): number {
    // Never earlier than the previous document, so @timestamp order is offset order.
    this.#lastTimestamp = Math.max(Date.now(), this.#lastTimestamp);
    return this.#lastTimestamp;
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
