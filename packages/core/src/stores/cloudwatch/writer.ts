import { createHash, type Hash } from 'node:crypto';
import type { PutLogEventsCommandOutput } from '@aws-sdk/client-cloudwatch-logs';
import type { AttemptKey } from '../../attempt-key.js';
import { ConflictError, IntegrityError } from '../../errors.js';
import { withRetry } from '../../retry.js';
import type { LogWriter } from '../../store.js';
import { type LogRecord, RecordSplitter, recordBytes } from '../shared/log-records.js';
import { validateExpected } from '../shared/store-checks.js';
import type { CloudWatchContext } from './client.js';
import { cloudwatchError, isThrottling, isTransient, RejectedEventsError } from './errors.js';
import { type ClockState, lineTime, stampBatch } from './event-times.js';
import { encodeRecord, endMessage, envelope, headerMessage, lineMessage } from './events.js';
import { EVENT_OVERHEAD } from './settings.js';
import type { CloudWatchStore } from './store.js';

/** PutLogEvents: the events of one batch may span at most 24 hours; an hour of margin. */
const MAX_BATCH_SPAN_MS = 23 * 60 * 60 * 1000;

/** Where a writer starts, from what the stream holds (`CloudWatchStore.openWriter`). */
export interface WriterStart {
  /** `envelope` only for a stream an earlier tasklog began in that layout. */
  layout: 'lines' | 'envelope';
  /** Bytes the stream holds contiguously from 0. */
  committed: number;
  /** The stream's newest timestamp: every batch is stamped after it. */
  lastTimestamp: number;
}

/** One event ready to send. */
interface Pending {
  kind: 'data' | 'header' | 'end';
  /** Offset just past the record (data), or the record's offset (header, end). */
  end: number;
  message: string;
  /** Bytes it counts against the batch limit: UTF-8 message + 26. */
  cost: number;
  /** The time its line says it was written (only for an event that starts a line). */
  lineTime: number | undefined;
  /** Set when it joins a batch. */
  timestamp: number;
}

/** The batch being sent; kept until CloudWatch is known to hold it. */
interface Inflight {
  /** Every event of the batch (for the committed offset once it is stored). */
  readonly all: Pending[];
  /** The events not known to be stored yet. */
  left: Pending[];
  /** The last try failed without an answer: the batch may or may not be stored. */
  uncertain: boolean;
}

/**
 * Writes one attempt's stream: records are queued and sent in batches within PutLogEvents'
 * limits (count, bytes with 26 per event, 24-hour span); a full batch is sent before append
 * returns, so at most about one batch waits in memory.
 *
 * Exactly once: a batch is stored whole or not at all, and each batch is stamped after
 * everything sent before it (event-times.ts). After an uncertain failure (connection
 * reset, timeout, 5xx) the stream's newest event is read before anything is resent: a stamp at
 * or past the batch's means it is there, and only the events after that stamp go again. The
 * batch stays the writer's until that is settled, also across calls after the retries ran out,
 * so a later flush never sends it blindly. Throttling is certain (nothing stored) and resends
 * the batch. Events CloudWatch rejects as too old or too new are stamped again and resent.
 */
export class CloudWatchLogWriter implements LogWriter {
  #splitter: RecordSplitter;
  readonly #queue: Pending[] = [];
  #inflight: Inflight | undefined;
  #committed: number;
  #clock: ClockState;
  /** Whether the next record starts a line (and so may carry the line's time). */
  #atLineStart = true;
  #state: 'open' | 'finished' | 'aborted' = 'open';
  #tailOp: Promise<unknown> = Promise.resolve();
  /** sha256 of every byte of the log, while this writer has seen all of them (opened at 0). */
  readonly #hash: Hash = createHash('sha256');
  readonly #sawAll: boolean;
  readonly #layout: 'lines' | 'envelope';

  constructor(
    private readonly store: CloudWatchStore,
    private readonly ctx: CloudWatchContext,
    private readonly key: AttemptKey,
    private readonly stream: string,
    start: WriterStart,
  ) {
    this.#committed = start.committed;
    this.#clock = { last: start.lastTimestamp, lineTime: undefined, message: undefined };
    this.#layout = start.layout;
    this.#sawAll = start.committed === 0;
    this.#splitter = new RecordSplitter(start.committed, store.maxPieceBytes);
  }

  get committedOffset(): number {
    return this.#committed;
  }

  get offset(): number {
    return this.#splitter.offset + this.#splitter.pending;
  }

  /** The header naming the attempt, sent at once so list() finds the attempt before its lines. */
  writeHeader(): Promise<void> {
    return this.#serial(async () => {
      const message =
        this.#layout === 'envelope' ? envelope.header(this.key) : headerMessage(this.key);
      this.#queue.unshift(this.#pending('header', 0, message, undefined));
      await this.#sendBatch();
    });
  }

  /**
   * Throws ConflictError after finish/abort. A failed send keeps the bytes queued (a later
   * flush retries them), so the caller must not append them again.
   */
  append(bytes: Uint8Array): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      if (bytes.length === 0) return;
      if (this.#sawAll) this.#hash.update(bytes);
      this.#enqueue(this.#splitter.push(bytes));
      while (this.#batchLength() < this.#queue.length) await this.#sendBatch();
    });
  }

  flush(): Promise<number> {
    return this.#serial(async () => {
      this.#assertOpen();
      this.#enqueue(this.#splitter.flush());
      await this.#sendAll();
      return this.#committed;
    });
  }

  finish(expected: { size: number; sha256: string }): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      validateExpected(expected);
      const want = { size: expected.size, sha256: expected.sha256.toLowerCase() };
      const where = `log stream ${this.stream} in ${this.store.logGroup}`;
      try {
        this.#enqueue(this.#splitter.end());
        await this.#sendAll();
        let stored: { size: number; sha256: string };
        if (this.#sawAll) {
          stored = { size: this.#committed, sha256: this.#hash.copy().digest('hex') };
        } else {
          // Resumed: the bytes before this writer are only in CloudWatch.
          stored = await digestPrefix(this.store, this.key, this.#committed);
        }
        if (stored.size !== want.size || stored.sha256 !== want.sha256) {
          throw new IntegrityError(
            `${where} has ${stored.size} bytes with sha256 ${stored.sha256}, expected ${want.size} bytes with sha256 ${want.sha256}; no end record written`,
          );
        }
        const message =
          this.#layout === 'envelope'
            ? envelope.end(want.size, want.sha256)
            : endMessage(want.size, want.sha256);
        this.#queue.push(this.#pending('end', want.size, message, undefined));
        await this.#sendAll();
        this.#state = 'finished';
      } catch (err) {
        throw cloudwatchError(err, this.store.logGroup, this.stream, 'finish');
      }
    });
  }

  async abort(): Promise<void> {
    if (this.#state === 'open') this.#state = 'aborted';
    this.#queue.length = 0;
    await this.#tailOp;
    this.#inflight = undefined;
  }

  #pending(kind: Pending['kind'], end: number, message: string, time: number | undefined): Pending {
    const cost = Buffer.byteLength(message) + EVENT_OVERHEAD;
    return { kind, end, message, cost, lineTime: time, timestamp: 0 };
  }

  #enqueue(records: LogRecord[]): void {
    const max = this.store.maxPieceBytes;
    const encode = this.#layout === 'envelope' ? envelope.record : lineMessage;
    for (const r of records) {
      const time = this.#atLineStart ? lineTime(r.text) : undefined;
      this.#atLineStart = recordBytes(r).at(-1) === 0x0a;
      for (const [i, part] of encodeRecord(r, max, encode).entries()) {
        const end = part.record.offset + part.record.length;
        this.#queue.push(this.#pending('data', end, part.message, i === 0 ? time : undefined));
      }
    }
  }

  /** How many queued events the next PutLogEvents may carry (count and bytes). */
  #batchLength(): number {
    const { maxBatchEvents, maxBatchBytes } = this.store;
    let bytes = 0;
    let n = 0;
    for (const e of this.#queue) {
      if (n >= maxBatchEvents || bytes + e.cost > maxBatchBytes) break;
      bytes += e.cost;
      n++;
    }
    return n;
  }

  async #sendAll(): Promise<void> {
    while (this.#inflight || this.#queue.length > 0) await this.#sendBatch();
  }

  async #sendBatch(): Promise<void> {
    if (!this.#inflight) {
      const n = this.#batchLength();
      if (n === 0) return;
      const candidates = this.#queue.slice(0, n);
      const { stamps, state } = stampBatch(this.#clock, candidates, Date.now(), MAX_BATCH_SPAN_MS);
      const events = this.#queue.splice(0, stamps.length);
      for (const [i, e] of events.entries()) e.timestamp = stamps[i]!;
      this.#clock = state;
      this.#inflight = { all: events, left: events, uncertain: false };
    }
    const inflight = this.#inflight;
    try {
      await this.#put(inflight);
    } catch (err) {
      throw cloudwatchError(err, this.store.logGroup, this.stream, 'write to');
    }
    this.#inflight = undefined;
    for (const e of inflight.all) {
      if (e.kind === 'data') this.#committed = Math.max(this.#committed, e.end);
    }
  }

  async #put(inflight: Inflight): Promise<void> {
    const { ctx, store, stream } = this;
    await withRetry(
      async () => {
        if (inflight.uncertain) {
          const newest = await this.#newestTimestamp();
          inflight.left = inflight.left.filter((e) => e.timestamp > newest);
          inflight.uncertain = false;
        }
        if (inflight.left.length === 0) return;
        let res: PutLogEventsCommandOutput;
        try {
          res = await ctx.writeClient.send(
            new ctx.sdk.PutLogEventsCommand({
              logGroupName: store.logGroup,
              logStreamName: stream,
              logEvents: inflight.left.map((e) => ({ timestamp: e.timestamp, message: e.message })),
            }),
          );
        } catch (err) {
          if (isTransient(err) && !isThrottling(err)) inflight.uncertain = true;
          throw err;
        }
        const info = res.rejectedLogEventsInfo;
        if (!info) {
          inflight.left = [];
          return;
        }
        this.#restampRejected(inflight, info);
      },
      { ...store.retryOptions(), retryable: isTransient },
    );
  }

  /**
   * Events CloudWatch dropped as too old (a prefix of the batch) or too new (a suffix) are stamped
   * again, after what it kept, and resent. If it kept events after ones it called too old, the
   * stream's order is no longer the log's; that takes clocks more than an hour apart, which
   * signed requests (15 minutes of skew at most) do not reach.
   */
  #restampRejected(
    inflight: Inflight,
    info: NonNullable<PutLogEventsCommandOutput['rejectedLogEventsInfo']>,
  ): void {
    const left = inflight.left;
    const before = Math.max(info.tooOldLogEventEndIndex ?? 0, info.expiredLogEventEndIndex ?? 0);
    const after = Math.max(info.tooNewLogEventStartIndex ?? left.length, before);
    const kept = left.slice(before, after);
    const rejected = [...left.slice(0, before), ...left.slice(after)];
    if (rejected.length === 0) {
      inflight.left = [];
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
    inflight.left = rejected.map((e, i) => ({ ...e, timestamp: base + i }));
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

  #assertOpen(): void {
    if (this.#state !== 'open') {
      throw new ConflictError(
        `writer of log stream ${this.stream} in ${this.store.logGroup} is already ${this.#state}`,
      );
    }
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#tailOp.then(op, op);
    this.#tailOp = run.catch(() => undefined);
    return run;
  }
}

/** Size and sha256 of the first `size` stored bytes, streamed through the store's reader. */
async function digestPrefix(
  store: CloudWatchStore,
  key: AttemptKey,
  size: number,
): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let got = 0;
  for await (const chunk of store.read(key, { end: size })) {
    hash.update(chunk.bytes);
    got += chunk.bytes.length;
  }
  return { size: got, sha256: hash.digest('hex') };
}
