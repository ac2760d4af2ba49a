import { createHash } from 'node:crypto';
import type { PutLogEventsCommandOutput } from '@aws-sdk/client-cloudwatch-logs';
import type { AttemptKey } from '../../attempt-key.js';
import { IntegrityError, type TasklogError } from '../../errors.js';
import type { LogStore } from '../../store.js';
import { isAwsThrottling } from '../shared/aws-errors.js';
import { endsLine, type LogRecord } from '../shared/log-records.js';
import type {
  LogDigest,
  OutgoingBatch,
  RecordLimits,
  RecordRetry,
  RecordSink,
} from '../shared/record-writer.js';
import type { CloudWatchContext } from './client.js';
import { cloudwatchError, isTransient, RejectedEventsError } from './errors.js';
import { type ClockState, lineTime, stampBatch } from './event-times.js';
import { encodeRecord, endMessage, envelope, headerMessage, lineMessage } from './events.js';
import { putLogEventsCommand } from './put-body.js';
import { EVENT_OVERHEAD, type ResolvedCloudWatchOptions } from './settings.js';

/** PutLogEvents: the events of one batch may span at most 24 hours; an hour of margin. */
const MAX_BATCH_SPAN_MS = 23 * 60 * 60 * 1000;

/** What the sink needs of its store. */
export interface SinkBackend {
  readonly logGroup: string;
  readonly options: Pick<
    ResolvedCloudWatchOptions,
    'maxBatchEvents' | 'maxBatchBytes' | 'maxPieceBytes'
  >;
  /** The backoff of tasklog's own retries of writes. */
  retryOptions(): Omit<RecordRetry, 'retryable'>;
}

/** Where a writer starts, from what the stream holds (`CloudWatchStore.openWriter`). */
export interface SinkStart {
  /** `envelope` only for a stream an earlier tasklog began in that layout. */
  layout: 'lines' | 'envelope';
  /** The stream's newest timestamp: every batch is stamped after it. */
  lastTimestamp: number;
}

/** One event ready to send. */
export interface CloudWatchEvent {
  /** Offset just past the record (data); undefined for the header and the end. */
  end: number | undefined;
  message: string;
  /** Bytes it counts against the batch limit: UTF-8 message + 26. */
  bytes: number;
  /** The time its line says it was written (only for an event that starts a line). */
  lineTime: number | undefined;
  /** Set when it joins a batch. */
  timestamp: number;
}

/**
 * One attempt's stream as the RecordWriter's sink: records are events, sent in PutLogEvents
 * batches within its limits (count, bytes with 26 per event, 24-hour span).
 *
 * Exactly once: a batch is stored whole or not at all, and each batch is stamped after
 * everything sent before it (event-times.ts). After an uncertain failure (connection
 * reset, timeout, 5xx) the stream's newest event is read before anything is resent: a stamp at
 * or past the batch's means it is there, and only the events after that stamp go again. The
 * writer keeps the batch until that is settled, also across calls after the retries ran out,
 * so a later flush never sends it blindly. Throttling is certain (nothing stored) and resends
 * the batch. Events CloudWatch rejects as too old or too new are stamped again and resent.
 */
export class CloudWatchSink implements RecordSink<CloudWatchEvent> {
  readonly name: string;
  readonly limits: RecordLimits;
  readonly retry: RecordRetry;
  /** The batch stays the writer's until its fate is settled (see above). */
  readonly afterFailedBatch = 'resend';
  #clock: ClockState;
  /** Whether the next record starts a line (and so may carry the line's time). */
  #atLineStart = true;
  /** The last try of the batch under way failed without an answer: it may or may not be stored. */
  #uncertain = false;
  readonly #layout: 'lines' | 'envelope';

  constructor(
    private readonly store: SinkBackend,
    private readonly ctx: CloudWatchContext,
    private readonly stream: string,
    start: SinkStart,
  ) {
    this.name = `log stream ${stream} in ${store.logGroup}`;
    this.limits = {
      maxBatchCount: store.options.maxBatchEvents,
      maxBatchBytes: store.options.maxBatchBytes,
      maxPieceBytes: store.options.maxPieceBytes,
    };
    this.retry = { ...store.retryOptions(), retryable: isTransient };
    this.#clock = { last: start.lastTimestamp, lineTime: undefined, message: undefined };
    this.#layout = start.layout;
  }

  /** The header naming the attempt, sent at once so list() finds the attempt before its lines. */
  header(key: AttemptKey): CloudWatchEvent {
    const message = this.#layout === 'envelope' ? envelope.header(key) : headerMessage(key);
    return event(undefined, message, undefined);
  }

  encode(records: LogRecord[]): CloudWatchEvent[] {
    const max = this.store.options.maxPieceBytes;
    const encode = this.#layout === 'envelope' ? envelope.record : lineMessage;
    const out: CloudWatchEvent[] = [];
    for (const r of records) {
      const time = this.#atLineStart ? lineTime(r.text) : undefined;
      this.#atLineStart = endsLine(r);
      for (const [i, part] of encodeRecord(r, max, encode).entries()) {
        const end = part.record.offset + part.record.length;
        out.push(event(end, part.message, i === 0 ? time : undefined, part.bytes));
      }
    }
    return out;
  }

  encodeEnd(size: number, sha256: string): CloudWatchEvent {
    const message =
      this.#layout === 'envelope' ? envelope.end(size, sha256) : endMessage(size, sha256);
    return event(undefined, message, undefined);
  }

  stamp(candidates: readonly CloudWatchEvent[]): number {
    const { stamps, state } = stampBatch(this.#clock, candidates, Date.now(), MAX_BATCH_SPAN_MS);
    for (const [i, stamp] of stamps.entries()) candidates[i]!.timestamp = stamp;
    this.#clock = state;
    return stamps.length;
  }

  async send(batch: OutgoingBatch<CloudWatchEvent>): Promise<void> {
    const { ctx, store, stream } = this;
    if (this.#uncertain) {
      const newest = await this.#newestTimestamp();
      batch.left = batch.left.filter((e) => e.timestamp > newest);
      this.#uncertain = false;
    }
    if (batch.left.length === 0) return;
    let res: PutLogEventsCommandOutput;
    try {
      res = await ctx.writeClient.send(
        putLogEventsCommand(ctx, store.logGroup, stream, batch.left),
      );
    } catch (err) {
      if (isTransient(err) && !isAwsThrottling(err)) this.#uncertain = true;
      throw err;
    }
    const info = res.rejectedLogEventsInfo;
    if (!info) {
      batch.left = [];
      return;
    }
    this.#restampRejected(batch, info);
  }

  failure(err: unknown): TasklogError {
    return cloudwatchError(err, this.store.logGroup, this.stream, 'write to');
  }

  /**
   * Events CloudWatch dropped as too old (a prefix of the batch) or too new (a suffix) are stamped
   * again, after what it kept, and resent. If it kept events after ones it called too old, the
   * stream's order is no longer the log's; that takes clocks more than an hour apart, which
   * signed requests (15 minutes of skew at most) do not reach.
   */
  #restampRejected(
    batch: OutgoingBatch<CloudWatchEvent>,
    info: NonNullable<PutLogEventsCommandOutput['rejectedLogEventsInfo']>,
  ): void {
    const left = batch.left;
    const before = Math.max(info.tooOldLogEventEndIndex ?? 0, info.expiredLogEventEndIndex ?? 0);
    const after = Math.max(info.tooNewLogEventStartIndex ?? left.length, before);
    const kept = left.slice(before, after);
    const rejected = [...left.slice(0, before), ...left.slice(after)];
    if (rejected.length === 0) {
      batch.left = [];
      return;
    }
    if (this.#layout === 'lines' && before > 0 && kept.length > 0) {
      throw new IntegrityError(
        `CloudWatch rejected ${before} event(s) of log stream ${this.stream} as more than 14 days old but stored later ones, so the stream no longer reads in order; check this host's clock`,
      );
    }
    // Stamped anew from now (not after the rejected stamps: a clock that was ahead must not keep
    // every later event in the future), after what CloudWatch kept.
    const base = Math.max(Date.now(), (kept.at(-1)?.timestamp ?? 0) + 1);
    batch.left = rejected.map((e, i) => ({ ...e, timestamp: base + i }));
    this.#clock = { ...this.#clock, last: Math.max(this.#clock.last, base + rejected.length - 1) };
    throw new RejectedEventsError(rejected.length);
  }

  /** The timestamp of the stream's newest event (0 for an empty stream). */
  async #newestTimestamp(): Promise<number> {
    const { ctx, store, stream } = this;
    const page = await ctx.client.send(
      new ctx.sdk.GetLogEventsCommand({
        logGroupName: store.logGroup,
        logStreamName: stream,
        startFromHead: false,
        limit: 1,
      }),
    );
    return Math.max(0, ...(page.events ?? []).map((e) => e.timestamp ?? 0));
  }
}

function event(
  end: number | undefined,
  message: string,
  time: number | undefined,
  messageBytes = Buffer.byteLength(message),
): CloudWatchEvent {
  return { end, message, bytes: messageBytes + EVENT_OVERHEAD, lineTime: time, timestamp: 0 };
}

/** Size and sha256 of the first `size` stored bytes, streamed through the store's reader. */
export async function digestPrefix(
  store: Pick<LogStore, 'read'>,
  key: AttemptKey,
  size: number,
): Promise<LogDigest> {
  const hash = createHash('sha256');
  let got = 0;
  for await (const chunk of store.read(key, { end: size })) {
    hash.update(chunk.bytes);
    got += chunk.bytes.length;
  }
  return { size: got, sha256: hash.digest('hex') };
}
