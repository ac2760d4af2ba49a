import { createHash, type Hash } from 'node:crypto';
import type {
  CloudWatchLogsClient,
  OutputLogEvent,
  PutLogEventsCommandOutput,
} from '@aws-sdk/client-cloudwatch-logs';
import { type AttemptKey, attemptKey, sameAttempt } from '../attempt-key.js';
import {
  AbortedError,
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  InvalidInputError,
  NotFoundError,
  OffsetOutOfRangeError,
  TasklogError,
} from '../errors.js';
import { type AttemptFilter, PathTemplate } from '../path-template.js';
import { withRetry } from '../retry.js';
import type {
  ListOptions,
  LogChunk,
  LogStat,
  LogStore,
  LogWriter,
  OpenWriterOptions,
  ReadOptions,
  StoreCapabilities,
} from '../store.js';
import { matchesFilter } from './chunk-layout.js';
import { type LogRecord, RecordAssembler, RecordSplitter } from './log-records.js';
import type { OpenStoreOptions } from './open-store.js';
import { throwIfAborted, validateExpected, validateFilter } from './store-checks.js';

/** The `[cloudwatch]` config section. Credentials come from the AWS SDK's default chain only. */
export interface CloudWatchSettings {
  /** Overrides the region of the log group ARN. */
  region?: string;
  /** Endpoint override, e.g. an emulator or a VPC endpoint: `http://127.0.0.1:4566`. */
  endpoint?: string;
  /** Tries per request (the first included), with exponential backoff and full jitter. */
  max_attempts?: number;
}

export interface CloudWatchStoreOptions {
  /** The log group. Created on the first write when missing (needs `logs:CreateLogGroup`). */
  logGroup: string;
  /** AWS region of the log group. */
  region: string;
  /** Account id, only used in `url`. */
  accountId?: string;
  /** Endpoint override (emulators, VPC endpoints). Default: the region's public endpoint. */
  endpoint?: string;
  /** Where each attempt's log lives; the stream name is its rendering with `:` → `_`. */
  pathTemplate?: PathTemplate;
  /** Tries per request, the first included. Default 8. */
  maxAttempts?: number;
  /** First backoff cap of tasklog's own retries (writes), in ms. Default 100. */
  retryBaseDelayMs?: number;
  /** Largest backoff sleep of tasklog's own retries, in ms. Default 20,000. */
  maxRetryDelayMs?: number;
  /**
   * Largest piece of a line in one event. Default 40 KiB: JSON escapes a control character as
   * `\u00XX` (6 bytes), so a 40 KiB piece is at most 240 KiB of message plus ~70 bytes of
   * framing — within the 256 KiB event limit of older CloudWatch pages, and well within today's
   * 1 MiB. A line longer than this becomes several events.
   */
  maxPieceBytes?: number;
  /** Events per PutLogEvents, at most 10,000 (the API's limit). Default 10,000. */
  maxBatchEvents?: number;
  /** Bytes per PutLogEvents (UTF-8 messages + 26 per event), at most 1,048,576. Default that. */
  maxBatchBytes?: number;
  /**
   * A read from an offset at least this large asks FilterLogEvents for the events with
   * `{ $.offset >= offset - 1 MiB }` instead of paging GetLogEvents from the head, so fewer
   * bytes travel (the service still scans the stream). Default 4 MiB; `Infinity` turns it off.
   */
  filterFromOffset?: number;
  /** Socket timeout of one request in ms. Default 60,000. */
  requestTimeoutMs?: number;
}

/** PutLogEvents limits (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html). */
const MAX_BATCH_EVENTS = 10_000;
const MAX_BATCH_BYTES = 1_048_576;
const EVENT_OVERHEAD = 26;
/** Valid events of one batch may span at most 24 hours; an hour of margin. */
const MAX_BATCH_SPAN_MS = 23 * 60 * 60 * 1000;
const DEFAULT_PIECE_BYTES = 40 * 1024;
/**
 * No record of any configuration covers more than one event's 1 MiB, so the record holding byte
 * N starts at N - 1 MiB or later.
 */
const MAX_RECORD_BYTES = 1024 * 1024;
/** Events read from the end of a stream to learn its tail. */
const TAIL_EVENTS = 25;
/** DescribeLogStreams' maximum page. */
const DESCRIBE_PAGE = 50;
const MAX_STREAM_NAME = 512;
const GROUP_NAME = /^[.\-_/#A-Za-z0-9]{1,512}$/;
const URL_PATTERN = /^cloudwatch:\/\/arn:([^:]+):logs:([^:]*):([^:]*):log-group:([^:]+)(?::\*)?$/i;

/** What one event of a stream holds, once parsed. */
type StoredItem =
  | { kind: 'data'; record: LogRecord; timestamp: number; ingestionTime?: number }
  | { kind: 'header'; key: unknown; timestamp: number; ingestionTime?: number }
  | {
      kind: 'end';
      size: number;
      sha256: string;
      timestamp: number;
      ingestionTime?: number;
    };

interface Context {
  sdk: typeof import('@aws-sdk/client-cloudwatch-logs');
  /** Reads, deletes: retried by the SDK (they are safe to repeat). */
  client: CloudWatchLogsClient;
  /**
   * Creates and PutLogEvents: one try each; tasklog retries them itself, because after a lost
   * answer it must look at the stream before resending (the SDK would just resend the batch
   * and store it twice).
   */
  writeClient: CloudWatchLogsClient;
}

/**
 * The `cloudwatch://arn:aws:logs:REGION:ACCOUNT:log-group:NAME` archive, laid out like Airflow's
 * CloudwatchTaskHandler: one log stream per attempt, named by the attempt's relative path with
 * every `:` replaced by `_` (stream names cannot hold `:`), so Airflow finds tasklog's streams.
 *
 * - Every event is one record, its message compact JSON: `{"offset":N,"length":L,"text":"..."}`
 *   (or `"base64"` for bytes that are not UTF-8). A finished log ends with
 *   `{"offset":SIZE,"length":0,"end":true,"sha256":"..."}`. The first event of a stream is a
 *   header `{"offset":0,"length":0,"key":{...}}`: the stream name cannot be parsed back (`:` and
 *   `_` became one), so list() reads the key from there. Readers ignore other length-0 events.
 * - Timestamps: CloudWatch rejects events older than 14 days or more than 2 hours ahead, so an
 *   event is stamped with the time it is shipped, never a time found in the line; and each is
 *   max(now, previous), so timestamp order is offset order.
 * - Reads page GetLogEvents from the head: starting at offset N costs O(N) (CloudWatch cannot
 *   seek by our offset); from `filterFromOffset` on, FilterLogEvents sends only events near and
 *   after N. Either way a reader de-duplicates and orders by offset.
 * - stat() of a running log reads only the stream's last events: its size is the end of the
 *   record with the highest offset.
 */
export class CloudWatchStore implements LogStore {
  readonly url: string;
  readonly capabilities: StoreCapabilities = { liveAppend: true, seekableReads: false };
  readonly logGroup: string;
  readonly region: string;
  readonly endpoint: string | undefined;
  readonly pathTemplate: PathTemplate;
  readonly maxAttempts: number;
  readonly maxPieceBytes: number;
  readonly maxBatchEvents: number;
  readonly maxBatchBytes: number;
  readonly filterFromOffset: number;
  readonly retryBaseDelayMs: number;
  readonly maxRetryDelayMs: number;
  readonly #requestTimeoutMs: number;
  #context: Promise<Context> | undefined;

  constructor(options: CloudWatchStoreOptions) {
    if (typeof options.logGroup !== 'string' || !GROUP_NAME.test(options.logGroup)) {
      throw new InvalidInputError(
        `CloudWatch log group name must be 1-512 letters, digits, ".", "-", "_", "/" or "#", got ${JSON.stringify(options.logGroup)}`,
      );
    }
    if (typeof options.region !== 'string' || !/^[a-z0-9-]+$/.test(options.region)) {
      throw new InvalidInputError(
        `CloudWatch region must look like us-east-1, got ${JSON.stringify(options.region)}`,
      );
    }
    const int = (name: string, v: number | undefined, def: number, min: number, max: number) => {
      const value = v ?? def;
      if (!Number.isSafeInteger(value) || value < min || value > max) {
        throw new InvalidInputError(
          `CloudWatch ${name} must be an integer ${min}-${max}, got ${value}`,
        );
      }
      return value;
    };
    this.logGroup = options.logGroup;
    this.region = options.region;
    this.endpoint = options.endpoint;
    this.pathTemplate = options.pathTemplate ?? new PathTemplate();
    this.maxAttempts = int('maxAttempts', options.maxAttempts, 8, 1, 100);
    this.maxPieceBytes = int(
      'maxPieceBytes',
      options.maxPieceBytes,
      DEFAULT_PIECE_BYTES,
      4,
      170_000,
    );
    this.maxBatchEvents = int(
      'maxBatchEvents',
      options.maxBatchEvents,
      MAX_BATCH_EVENTS,
      1,
      MAX_BATCH_EVENTS,
    );
    this.maxBatchBytes = int(
      'maxBatchBytes',
      options.maxBatchBytes,
      MAX_BATCH_BYTES,
      // One event of the largest piece must fit.
      this.maxPieceBytes * 6 + 200 + EVENT_OVERHEAD,
      MAX_BATCH_BYTES,
    );
    this.retryBaseDelayMs = int('retryBaseDelayMs', options.retryBaseDelayMs, 100, 1, 60_000);
    this.maxRetryDelayMs = int('maxRetryDelayMs', options.maxRetryDelayMs, 20_000, 1, 600_000);
    this.#requestTimeoutMs = int(
      'requestTimeoutMs',
      options.requestTimeoutMs,
      60_000,
      1,
      3_600_000,
    );
    const filterFrom = options.filterFromOffset ?? 4 * 1024 * 1024;
    if (!(filterFrom >= 0)) {
      throw new InvalidInputError(`CloudWatch filterFromOffset must be >= 0, got ${filterFrom}`);
    }
    this.filterFromOffset = filterFrom;
    this.url = `cloudwatch://arn:aws:logs:${this.region}:${options.accountId ?? ''}:log-group:${this.logGroup}`;
  }

  /**
   * `cloudwatch://arn:aws:logs:REGION:ACCOUNT:log-group:NAME` (a trailing `:*` is accepted), as
   * Airflow's `remote_base_log_folder`. `options.cloudwatch` is the `[cloudwatch]` config
   * section (region override, endpoint, max_attempts). Throws InvalidInputError.
   */
  static fromUrl(
    url: string,
    options: OpenStoreOptions & { cloudwatch?: Partial<CloudWatchSettings> } = {},
    overrides: Partial<CloudWatchStoreOptions> = {},
  ): CloudWatchStore {
    const m = URL_PATTERN.exec(url);
    if (!m) {
      throw new InvalidInputError(
        `CloudWatch store URL must look like cloudwatch://arn:aws:logs:REGION:ACCOUNT:log-group:NAME, got ${JSON.stringify(url)}`,
      );
    }
    const settings = options.cloudwatch ?? {};
    const region = settings.region ?? m[2] ?? '';
    if (region === '') {
      throw new InvalidInputError(
        `CloudWatch store URL ${url} names no region; put it in the ARN or set cloudwatch.region`,
      );
    }
    const store = new CloudWatchStore({
      logGroup: m[4]!,
      region,
      accountId: m[3],
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      ...(settings.max_attempts !== undefined ? { maxAttempts: settings.max_attempts } : {}),
      ...(options.pathTemplate ? { pathTemplate: options.pathTemplate } : {}),
      ...overrides,
    });
    return store;
  }

  /**
   * The attempt's log stream: its relative path with every `:` replaced by `_`, as Airflow's
   * CloudwatchTaskHandler names it. Throws InvalidInputError for a name CloudWatch refuses.
   */
  streamName(key: AttemptKey): string {
    const name = sanitize(this.pathTemplate.render(attemptKey(key)));
    if (name.length > MAX_STREAM_NAME || name.includes('*')) {
      throw new InvalidInputError(
        `CloudWatch log stream names are at most ${MAX_STREAM_NAME} characters without "*", got ${JSON.stringify(name)}`,
      );
    }
    return name;
  }

  /**
   * Creates the group and stream if needed and writes the header event; on an existing stream
   * resumes after its contiguous records (one scan from the head). Throws ConflictError if the
   * log is already complete; BackendUnavailableError, AbortedError.
   */
  async openWriter(key: AttemptKey, options: OpenWriterOptions = {}): Promise<LogWriter> {
    const { signal } = options;
    const stream = this.streamName(key);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      const state = await this.#resumeState(ctx, stream, signal);
      if (state.header !== undefined && !namesAttempt(state.header, key)) {
        throw new ConflictError(
          `log stream ${stream} in ${this.logGroup} belongs to another attempt (${JSON.stringify(state.header)}): their names differ only in ":" and "_", which CloudWatch stream names cannot tell apart`,
        );
      }
      if (state.complete) {
        throw new ConflictError(`log stream ${stream} in ${this.logGroup} is already complete`);
      }
      if (!state.exists) await this.#createStream(ctx, stream, signal);
      const writer = new CloudWatchLogWriter(
        this,
        ctx,
        key,
        stream,
        state.committed,
        state.lastTimestamp,
      );
      if (state.header === undefined) await writer.writeHeader();
      return writer;
    } catch (err) {
      throw cloudwatchError(err, this.logGroup, stream, 'open a writer for');
    }
  }

  /**
   * Streams the log from `offset`, in order, each byte once (records are de-duplicated and
   * ordered by offset). Throws NotFoundError (no stream, or a missing log group: nothing was
   * ever written), OffsetOutOfRangeError, IntegrityError (a finished log with a gap),
   * AbortedError, BackendUnavailableError.
   */
  async *read(key: AttemptKey, options: ReadOptions = {}): AsyncGenerator<LogChunk> {
    const { signal } = options;
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new InvalidInputError(`read offset must be an integer >= 0, got ${offset}`);
    }
    if (options.end !== undefined && (!Number.isSafeInteger(options.end) || options.end < offset)) {
      throw new InvalidInputError(
        `read end must be an integer >= offset (${offset}), got ${options.end}`,
      );
    }
    const stream = this.streamName(key);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      const from = offset - MAX_RECORD_BYTES;
      const filtered = offset >= this.filterFromOffset && from > 0;
      const items = filtered
        ? this.#filterFrom(ctx, stream, from, signal)
        : this.#scan(ctx, stream, signal);
      const assembler = new RecordAssembler(offset);
      let stop = options.end ?? Number.POSITIVE_INFINITY;
      let size: number | undefined;
      let seen = false;
      let highest = 0;
      for await (const item of items) {
        throwIfAborted(signal);
        seen = true;
        if (item.kind === 'header') {
          if (!namesAttempt(item.key, key)) {
            throw new NotFoundError(
              `log stream ${stream} in ${this.logGroup} holds another attempt's log (${JSON.stringify(item.key)}), whose name differs only in ":" and "_"`,
            );
          }
          continue;
        }
        if (item.kind === 'end') {
          size = item.size;
          if (offset > size) throw new OffsetOutOfRangeError(offset, size);
          stop = Math.min(stop, size);
        } else {
          const r = item.record;
          highest = Math.max(highest, r.offset + r.length);
          // Records past `stop` are not needed; keeping them out spares the assembler's buffer.
          if (r.offset >= stop) continue;
          for (const chunk of assembler.add(r)) {
            const room = stop - chunk.offset;
            if (room <= 0) break;
            yield room < chunk.bytes.length
              ? { offset: chunk.offset, bytes: chunk.bytes.subarray(0, room) }
              : chunk;
          }
        }
        if (assembler.next >= stop) return;
      }
      if (size !== undefined) {
        if (assembler.next < stop) {
          throw new IntegrityError(
            `log stream ${stream} in ${this.logGroup} is complete at ${size} bytes but its records stop at byte ${assembler.next}`,
          );
        }
        return;
      }
      if (filtered) {
        // The filter sent only events near and after `offset`; the tail says whether the
        // attempt exists and how far it goes.
        if (assembler.next === offset) {
          const stat = await this.stat(key, { signal });
          if (!stat) throw new NotFoundError(`no log stream ${stream} in ${this.logGroup}`);
          if (offset > stat.size) throw new OffsetOutOfRangeError(offset, stat.size);
        }
        return;
      }
      if (!seen) throw new NotFoundError(`no log stream ${stream} in ${this.logGroup}`);
      // A running log: it ends where its records end (at the first gap, should there be one).
      if (assembler.next === offset && offset > highest) {
        throw new OffsetOutOfRangeError(offset, highest);
      }
    } catch (err) {
      throw cloudwatchError(err, this.logGroup, stream, 'read');
    }
  }

  /**
   * From the stream's last events only (one GetLogEvents): complete → size and sha256 of the
   * end record; running → the end of the record with the highest offset; nothing → undefined.
   * Throws BackendUnavailableError, AbortedError.
   */
  async stat(
    key: AttemptKey,
    options: { signal?: AbortSignal } = {},
  ): Promise<LogStat | undefined> {
    const { signal } = options;
    const stream = this.streamName(key);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      const tail = await this.#tail(ctx, stream, signal);
      if (!tail) return undefined;
      const modifiedAt = tail.ingestionTime ? { modifiedAt: new Date(tail.ingestionTime) } : {};
      if (tail.end) {
        return { size: tail.end.size, complete: true, sha256: tail.end.sha256, ...modifiedAt };
      }
      if (!tail.header && tail.highest === 0 && !tail.hasData) return undefined;
      return { size: tail.highest, complete: false, ...modifiedAt };
    } catch (err) {
      throw cloudwatchError(err, this.logGroup, stream, 'stat');
    }
  }

  /**
   * Every attempt with a stream in the group matching `filter`: DescribeLogStreams below the
   * (sanitized) prefix the filter fixes, then each stream's header event (GetLogEvents, limit
   * 1) for its key. Streams without a header (not written by tasklog) are skipped.
   * Throws BackendUnavailableError, AbortedError.
   */
  async *list(filter: AttemptFilter, options: ListOptions = {}): AsyncGenerator<AttemptKey> {
    const { signal } = options;
    const wanted = validateFilter(filter);
    const prefix = sanitize(this.pathTemplate.prefix(wanted));
    try {
      const ctx = await this.#ctx();
      let token: string | undefined;
      do {
        throwIfAborted(signal);
        let page: Awaited<ReturnType<typeof describe>>;
        try {
          page = await describe(ctx, this.logGroup, prefix, token, signal);
        } catch (err) {
          if (isNotFound(err)) return; // no group: nothing was ever written
          throw err;
        }
        for (const s of page.logStreams ?? []) {
          const name = s.logStreamName;
          if (!name) continue;
          const key = await this.#headerKey(ctx, name, signal);
          if (key && matchesFilter(key, wanted)) yield key;
        }
        token = page.nextToken;
      } while (token);
    } catch (err) {
      throw cloudwatchError(err, this.logGroup, prefix, 'list');
    }
  }

  /** DeleteLogStream; a missing stream or group is not an error. */
  async delete(key: AttemptKey, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    const stream = this.streamName(key);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      await ctx.client.send(
        new ctx.sdk.DeleteLogStreamCommand({ logGroupName: this.logGroup, logStreamName: stream }),
        { abortSignal: signal },
      );
    } catch (err) {
      if (isNotFound(err)) return;
      throw cloudwatchError(err, this.logGroup, stream, 'delete');
    }
  }

  /**
   * DescribeLogStreams (limit 1) on the group: checks endpoint, credentials and permissions. A
   * missing group is fine: the first write creates it. Throws BackendUnavailableError.
   */
  async ping(options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      throwIfAborted(options.signal);
      const ctx = await this.#ctx();
      await ctx.client.send(
        new ctx.sdk.DescribeLogStreamsCommand({ logGroupName: this.logGroup, limit: 1 }),
        { abortSignal: options.signal },
      );
    } catch (err) {
      if (isNotFound(err)) return;
      throw cloudwatchError(err, this.logGroup, undefined, 'reach');
    }
  }

  async close(): Promise<void> {
    const pending = this.#context;
    this.#context = undefined;
    const ctx = await pending?.catch(() => undefined);
    ctx?.client.destroy();
    ctx?.writeClient.destroy();
  }

  /** @internal The backoff of tasklog's own retries of writes (the writer uses it too). */
  retryOptions() {
    return {
      maxAttempts: this.maxAttempts,
      baseDelayMs: this.retryBaseDelayMs,
      maxDelayMs: this.maxRetryDelayMs,
    };
  }

  /** Every parsed event of a stream from its head, paging until the same token comes back. */
  async *#scan(
    ctx: Context,
    stream: string,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<StoredItem> {
    // Not the SDK's paginator: GetLogEvents never stops returning a forward token, and the
    // paginator loops forever on it unless told to stop on a repeated token.
    let token: string | undefined;
    for (;;) {
      throwIfAborted(signal);
      const page = await ctx.client.send(
        new ctx.sdk.GetLogEventsCommand({
          logGroupName: this.logGroup,
          logStreamName: stream,
          startFromHead: true,
          ...(token ? { nextToken: token } : {}),
        }),
        { abortSignal: signal },
      );
      for (const e of page.events ?? []) {
        const item = parseEvent(e);
        if (item) yield item;
      }
      if (!page.nextForwardToken || page.nextForwardToken === token) return;
      token = page.nextForwardToken;
    }
  }

  /** Events with `offset >= from` (FilterLogEvents with a JSON pattern), page by page. */
  async *#filterFrom(
    ctx: Context,
    stream: string,
    from: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<StoredItem> {
    let token: string | undefined;
    do {
      throwIfAborted(signal);
      const page = await ctx.client.send(
        new ctx.sdk.FilterLogEventsCommand({
          logGroupName: this.logGroup,
          logStreamNames: [stream],
          filterPattern: `{ $.offset >= ${from} }`,
          ...(token ? { nextToken: token } : {}),
        }),
        { abortSignal: signal },
      );
      for (const e of page.events ?? []) {
        const item = parseEvent(e);
        if (item) yield item;
      }
      token = page.nextToken;
    } while (token);
  }

  /** The stream's last events, summarized; undefined when the stream does not exist. */
  async #tail(ctx: Context, stream: string, signal: AbortSignal | undefined) {
    let events: OutputLogEvent[];
    try {
      const page = await ctx.client.send(
        new ctx.sdk.GetLogEventsCommand({
          logGroupName: this.logGroup,
          logStreamName: stream,
          startFromHead: false,
          limit: TAIL_EVENTS,
        }),
        { abortSignal: signal },
      );
      events = page.events ?? [];
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return summarize(events);
  }

  /** What a new writer needs to know about a stream: one scan from the head. */
  async #resumeState(ctx: Context, stream: string, signal: AbortSignal | undefined) {
    const state = {
      exists: true,
      header: undefined as unknown,
      complete: false,
      committed: 0,
      lastTimestamp: 0,
    };
    const assembler = new RecordAssembler(0);
    let contiguous = true;
    try {
      for await (const item of this.#scan(ctx, stream, signal)) {
        state.lastTimestamp = Math.max(state.lastTimestamp, item.timestamp);
        if (item.kind === 'header') state.header ??= item.key;
        else if (item.kind === 'end') state.complete = true;
        else if (contiguous) {
          try {
            assembler.add(item.record);
          } catch (err) {
            // Too much after a gap: the log is committed up to the gap; a resumed writer
            // rewrites from there (the same bytes at the same offsets).
            if (!(err instanceof IntegrityError)) throw err;
            contiguous = false;
          }
        }
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
      state.exists = false;
    }
    state.committed = assembler.next;
    return state;
  }

  /** Creates the stream, and the group first if it is missing; "already exists" is success. */
  async #createStream(ctx: Context, stream: string, signal: AbortSignal | undefined) {
    const create = (send: () => Promise<unknown>) =>
      this.#write(async () => {
        try {
          await send();
        } catch (err) {
          if (errorName(err) !== 'ResourceAlreadyExistsException') throw err;
        }
      }, signal);
    const createStream = () =>
      create(() =>
        ctx.writeClient.send(
          new ctx.sdk.CreateLogStreamCommand({
            logGroupName: this.logGroup,
            logStreamName: stream,
          }),
          { abortSignal: signal },
        ),
      );
    try {
      await createStream();
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await create(() =>
        ctx.writeClient.send(new ctx.sdk.CreateLogGroupCommand({ logGroupName: this.logGroup }), {
          abortSignal: signal,
        }),
      );
      await createStream();
    }
  }

  /**
   * A write with tasklog's retries: throttling (many workers creating streams at once, see
   * apache/airflow#35164), 5xx and network failures, with full-jitter backoff.
   */
  #write<T>(fn: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    return withRetry(fn, { ...this.retryOptions(), retryable: isTransient, signal });
  }

  /** The key in a stream's header event, if it is one of ours and names this stream. */
  async #headerKey(
    ctx: Context,
    stream: string,
    signal: AbortSignal | undefined,
  ): Promise<AttemptKey | undefined> {
    let first: OutputLogEvent | undefined;
    try {
      const page = await ctx.client.send(
        new ctx.sdk.GetLogEventsCommand({
          logGroupName: this.logGroup,
          logStreamName: stream,
          startFromHead: true,
          limit: 1,
        }),
        { abortSignal: signal },
      );
      first = page.events?.[0];
    } catch (err) {
      if (isNotFound(err)) return undefined; // deleted since it was listed
      throw err;
    }
    const item = first ? parseEvent(first) : undefined;
    if (item?.kind !== 'header') return undefined;
    const key = keyOf(item.key);
    return key && this.streamName(key) === stream ? key : undefined;
  }

  /** The SDK and the clients, created on first use. */
  #ctx(): Promise<Context> {
    this.#context ??= this.#createContext().catch((err: unknown) => {
      this.#context = undefined;
      throw err;
    });
    return this.#context;
  }

  async #createContext(): Promise<Context> {
    const sdk = await import('@aws-sdk/client-cloudwatch-logs');
    // Credentials: the SDK's default chain only (env, profile, web identity, ECS/EC2 roles).
    const common = {
      region: this.region,
      ...(this.endpoint ? { endpoint: this.endpoint } : {}),
      requestHandler: { requestTimeout: this.#requestTimeoutMs, connectionTimeout: 10_000 },
    };
    return {
      sdk,
      client: new sdk.CloudWatchLogsClient({
        ...common,
        maxAttempts: this.maxAttempts,
        retryMode: 'standard',
      }),
      writeClient: new sdk.CloudWatchLogsClient({ ...common, maxAttempts: 1 }),
    };
  }
}

/** One event ready to send. */
interface Pending {
  kind: StoredItem['kind'];
  /** Offset just past the record (data), or the record's offset (header, end). */
  end: number;
  message: string;
  /** Bytes it counts against the batch limit: UTF-8 message + 26. */
  cost: number;
  timestamp: number;
}

/** A batch CloudWatch accepted only in part; the rejected events are to be sent again. */
class RejectedEventsError extends Error {
  constructor(readonly count: number) {
    super(
      `CloudWatch rejected ${count} event(s) as more than 14 days old or 2 hours ahead; check the clock`,
    );
    this.name = 'RejectedEventsError';
  }
}

/**
 * Writes one attempt's stream: records are queued into batches within PutLogEvents' limits
 * (count, bytes with 26 per event, time span); a full batch is sent before append returns, so at
 * most about one batch waits in memory.
 *
 * After an uncertain failure (connection reset, timeout, 5xx: the batch may or may not be
 * stored) the stream's last events are read before anything is resent, and only the records
 * beyond the highest stored offset go again. Throttling is certain (nothing stored) and resends
 * the batch. Events CloudWatch rejects as too old or too new are stamped again and resent.
 */
class CloudWatchLogWriter implements LogWriter {
  #splitter: RecordSplitter;
  readonly #queue: Pending[] = [];
  #committed: number;
  #lastTimestamp: number;
  #state: 'open' | 'finished' | 'aborted' = 'open';
  #tailOp: Promise<unknown> = Promise.resolve();
  /** sha256 of every byte of the log, while this writer has seen all of them (opened at 0). */
  readonly #hash: Hash = createHash('sha256');
  readonly #sawAll: boolean;

  constructor(
    private readonly store: CloudWatchStore,
    private readonly ctx: Context,
    private readonly key: AttemptKey,
    private readonly stream: string,
    committed: number,
    lastTimestamp: number,
  ) {
    this.#committed = committed;
    this.#lastTimestamp = lastTimestamp;
    this.#sawAll = committed === 0;
    this.#splitter = new RecordSplitter(committed, store.maxPieceBytes);
  }

  get committedOffset(): number {
    return this.#committed;
  }

  get offset(): number {
    return this.#splitter.offset + this.#splitter.pending;
  }

  /** The stream's first event, naming the attempt (list() reads it). */
  writeHeader(): Promise<void> {
    return this.#serial(async () => {
      const k = this.key;
      const header = {
        offset: 0,
        length: 0,
        key: {
          dagId: k.dagId,
          runId: k.runId,
          taskId: k.taskId,
          mapIndex: k.mapIndex,
          tryNumber: k.tryNumber,
        },
      };
      this.#queue.unshift(this.#pending('header', 0, JSON.stringify(header)));
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
        const end = { offset: want.size, length: 0, end: true, sha256: want.sha256 };
        this.#queue.push(this.#pending('end', want.size, JSON.stringify(end)));
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
  }

  #pending(kind: Pending['kind'], end: number, message: string): Pending {
    // Stamped when shipped, never from the line: CloudWatch drops events > 14 days old or
    // > 2 hours ahead. Never decreasing, so timestamp order is offset order.
    const timestamp = Math.max(Date.now(), this.#lastTimestamp);
    this.#lastTimestamp = timestamp;
    return { kind, end, message, cost: Buffer.byteLength(message) + EVENT_OVERHEAD, timestamp };
  }

  #enqueue(records: LogRecord[]): void {
    for (const r of records) {
      this.#queue.push(this.#pending('data', r.offset + r.length, JSON.stringify(r)));
    }
  }

  /** How many queued events the next PutLogEvents may carry. */
  #batchLength(): number {
    const { maxBatchEvents, maxBatchBytes } = this.store;
    const first = this.#queue[0];
    if (!first) return 0;
    let bytes = 0;
    let n = 0;
    for (const e of this.#queue) {
      if (n >= maxBatchEvents || bytes + e.cost > maxBatchBytes) break;
      if (e.timestamp - first.timestamp > MAX_BATCH_SPAN_MS) break;
      bytes += e.cost;
      n++;
    }
    return n;
  }

  async #sendAll(): Promise<void> {
    while (this.#queue.length > 0) await this.#sendBatch();
  }

  async #sendBatch(): Promise<void> {
    const n = this.#batchLength();
    if (n === 0) return;
    const batch = this.#queue.slice(0, n);
    try {
      await this.#put(batch);
    } catch (err) {
      throw cloudwatchError(err, this.store.logGroup, this.stream, 'write to');
    }
    this.#queue.splice(0, n);
    for (const e of batch)
      if (e.kind === 'data') this.#committed = Math.max(this.#committed, e.end);
  }

  async #put(batch: Pending[]): Promise<void> {
    const { ctx, store, stream } = this;
    let pending = batch;
    let uncertain = false;
    await withRetry(
      async () => {
        if (uncertain) {
          pending = await this.#unstored(pending);
          uncertain = false;
          if (pending.length === 0) return;
        }
        let res: PutLogEventsCommandOutput;
        try {
          res = await ctx.writeClient.send(
            new ctx.sdk.PutLogEventsCommand({
              logGroupName: store.logGroup,
              logStreamName: stream,
              logEvents: pending.map((e) => ({ timestamp: e.timestamp, message: e.message })),
            }),
          );
        } catch (err) {
          if (isTransient(err) && !isThrottling(err)) uncertain = true;
          throw err;
        }
        const info = res.rejectedLogEventsInfo;
        if (!info) return;
        const before = Math.max(
          info.tooOldLogEventEndIndex ?? 0,
          info.expiredLogEventEndIndex ?? 0,
        );
        const after = info.tooNewLogEventStartIndex ?? pending.length;
        const rejected = [...pending.slice(0, before), ...pending.slice(Math.max(after, before))];
        if (rejected.length === 0) return;
        // Stamped anew (now, not max(now, previous): a clock that was ahead must not keep
        // every later event in the future) and sent again.
        const now = Date.now();
        this.#lastTimestamp = Math.max(this.#lastTimestamp, now);
        pending = rejected.map((e) => ({ ...e, timestamp: now }));
        throw new RejectedEventsError(rejected.length);
      },
      { ...store.retryOptions(), retryable: isTransient },
    );
  }

  /**
   * After an uncertain failure: the events of `batch` the stream does not hold yet, judged by
   * its last events (one writer per stream, batches sent in order: the batch is either all
   * there, ending the stream, or not at all).
   */
  async #unstored(batch: Pending[]): Promise<Pending[]> {
    const { ctx, store, stream } = this;
    const page = await ctx.client.send(
      new ctx.sdk.GetLogEventsCommand({
        logGroupName: store.logGroup,
        logStreamName: stream,
        startFromHead: false,
        limit: TAIL_EVENTS,
      }),
    );
    const tail = summarize(page.events ?? []);
    return batch.filter((e) => {
      if (e.kind === 'header') return !tail.header && !tail.hasData;
      if (e.kind === 'end') return !tail.end;
      return e.end > tail.highest;
    });
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

/** The AttemptKey a header event names, if it is a valid one. */
function keyOf(raw: unknown): AttemptKey | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const k = raw as Record<string, unknown>;
  try {
    return attemptKey({
      dagId: k.dagId,
      runId: k.runId,
      taskId: k.taskId,
      mapIndex: k.mapIndex,
      tryNumber: k.tryNumber,
    });
  } catch {
    return undefined;
  }
}

function namesAttempt(header: unknown, key: AttemptKey): boolean {
  const named = keyOf(header);
  return named !== undefined && sameAttempt(named, key);
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

/** The parsed tail of a stream: its highest record end, header and end record if present. */
function summarize(events: readonly OutputLogEvent[]) {
  let highest = 0;
  let hasData = false;
  let header = false;
  let end: { size: number; sha256: string } | undefined;
  let ingestionTime = 0;
  for (const e of events) {
    const item = parseEvent(e);
    if (!item) continue;
    ingestionTime = Math.max(ingestionTime, item.ingestionTime ?? 0);
    if (item.kind === 'header') header = true;
    else if (item.kind === 'end') end = { size: item.size, sha256: item.sha256 };
    else {
      hasData = true;
      highest = Math.max(highest, item.record.offset + item.record.length);
    }
  }
  return { highest, hasData, header, end, ingestionTime };
}

/** One of our events, or undefined for anything else (events not written by tasklog). */
function parseEvent(event: OutputLogEvent): StoredItem | undefined {
  const message = event.message;
  if (typeof message !== 'string' || !message.startsWith('{')) return undefined;
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(message) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const { offset, length } = v;
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) return undefined;
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) return undefined;
  const timestamp = event.timestamp ?? 0;
  const ingestionTime = event.ingestionTime;
  const times = ingestionTime === undefined ? { timestamp } : { timestamp, ingestionTime };
  if (length === 0) {
    if (v.end === true && typeof v.sha256 === 'string' && /^[0-9a-f]{64}$/.test(v.sha256)) {
      return { kind: 'end', size: offset, sha256: v.sha256, ...times };
    }
    if (offset === 0 && typeof v.key === 'object' && v.key !== null) {
      return { kind: 'header', key: v.key, ...times };
    }
    return undefined;
  }
  const record: LogRecord = { offset, length };
  if (typeof v.text === 'string') record.text = v.text;
  else if (typeof v.base64 === 'string') record.base64 = v.base64;
  else return undefined;
  return { kind: 'data', record, ...times };
}

function describe(
  ctx: Context,
  group: string,
  prefix: string,
  token: string | undefined,
  signal: AbortSignal | undefined,
) {
  return ctx.client.send(
    new ctx.sdk.DescribeLogStreamsCommand({
      logGroupName: group,
      limit: DESCRIBE_PAGE,
      ...(prefix ? { logStreamNamePrefix: prefix } : {}),
      ...(token ? { nextToken: token } : {}),
    }),
    { abortSignal: signal },
  );
}

/** Airflow's CloudwatchTaskHandler: stream names cannot contain `:`. */
function sanitize(relativePath: string): string {
  return relativePath.replaceAll(':', '_');
}

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

function errorName(err: unknown): string | undefined {
  return (err as SdkErrorShape | undefined)?.name;
}

function isNotFound(err: unknown): boolean {
  return errorName(err) === 'ResourceNotFoundException';
}

const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'LimitExceededException',
]);
const SERVICE_FAULTS = new Set([
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalServerError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
]);
const CREDENTIAL_ERRORS = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'MissingAuthenticationTokenException',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'CredentialsProviderError',
]);

function isThrottling(err: unknown): boolean {
  return THROTTLING.has(errorName(err) ?? '');
}

/** Worth another try: throttling, 5xx, timeouts, dropped connections, rejected events. */
function isTransient(err: unknown): boolean {
  if (err instanceof RejectedEventsError) return true;
  if (err instanceof TasklogError) return false;
  const e = (err ?? {}) as SdkErrorShape;
  if (e.name === 'AbortError') return false;
  if (THROTTLING.has(e.name ?? '') || SERVICE_FAULTS.has(e.name ?? '')) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) return true;
  return (
    status === undefined && /socket hang up|ECONNRESET|EPIPE|timed? ?out/i.test(e.message ?? '')
  );
}

/**
 * The one place CloudWatch Logs SDK errors become tasklog errors. Every message names the group
 * and the stream (or prefix); every error keeps the SDK's as `cause`. A missing stream or group
 * is NotFoundError: groups are created on the first write, so a missing group only means that
 * nothing was ever stored there.
 */
function cloudwatchError(
  err: unknown,
  group: string,
  stream: string | undefined,
  action: string,
): TasklogError {
  if (err instanceof TasklogError) return err;
  const e = (err ?? {}) as SdkErrorShape;
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const where =
    stream === undefined ? `log group ${group}` : `log stream ${stream} in log group ${group}`;
  const detail = `${name}${status ? ` (HTTP ${status})` : ''}${e.message && e.message !== name ? `: ${e.message}` : ''}`;
  const cause = { cause: err };
  if (name === 'AbortError' || e.code === 'ABORT_ERR') {
    return new AbortedError(`${action} ${where} was aborted`, cause);
  }
  if (name === 'ResourceNotFoundException') {
    return new NotFoundError(`no ${where} (${e.message ?? 'not found'})`, cause);
  }
  if (CREDENTIAL_ERRORS.has(name) || status === 401 || status === 403) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: access denied (${detail}); check the credentials in the AWS default chain (AWS_* environment, profile, instance or task role) and the logs:* permissions`,
      cause,
    );
  }
  if (/region is missing/i.test(e.message ?? '')) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: no AWS region; put it in the log group ARN or set cloudwatch.region`,
      cause,
    );
  }
  if (err instanceof RejectedEventsError) {
    return new BackendUnavailableError(`cannot ${action} ${where}: ${err.message}`, cause);
  }
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: CloudWatch Logs endpoint not reachable (${e.code})`,
      cause,
    );
  }
  if (isTransient(err)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: CloudWatch Logs is throttling or failing even after retries (${detail})`,
      cause,
    );
  }
  return new BackendUnavailableError(`cannot ${action} ${where}: ${detail}`, cause);
}
