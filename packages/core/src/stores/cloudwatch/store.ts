import type { OutputLogEvent } from '@aws-sdk/client-cloudwatch-logs';
import type { AttemptKey } from '../../attempt-key.js';
import {
  ConflictError,
  IntegrityError,
  InvalidInputError,
  NotFoundError,
  OffsetOutOfRangeError,
} from '../../errors.js';
import type { AttemptFilter, PathTemplate } from '../../path-template.js';
import { withRetry } from '../../retry.js';
import type {
  ListOptions,
  LogChunk,
  LogStat,
  LogStore,
  LogWriter,
  OpenWriterOptions,
  ReadOptions,
  StoreCapabilities,
} from '../../store.js';
import type { OpenStoreOptions } from '../registry.js';
import { matchesFilter } from '../shared/chunk-layout.js';
import { RecordAssembler } from '../shared/log-records.js';
import { throwIfAborted, validateFilter } from '../shared/store-checks.js';
import { type CloudWatchContext, createCloudWatchContext } from './client.js';
import { cloudwatchError, errorName, isNotFound, isTransient } from './errors.js';
import { classifyStream, peekEvent, StreamDecoder } from './events.js';
import { impliedKey, listedKey, needsHeader, sanitize, streamNameOf } from './names.js';
import {
  describeStreams,
  envelopesFrom,
  eventsFromHead,
  firstEvent,
  lastEvents,
  type StreamRef,
  streamLayout,
} from './pages.js';
import { countBack, decodeAll, envelopeStat, keyOf, namesAttempt, resumeState } from './reads.js';
import {
  type CloudWatchSettings,
  type CloudWatchStoreOptions,
  resolveCloudWatchOptions,
} from './settings.js';
import { CloudWatchLogWriter } from './writer.js';

export type { CloudWatchSettings, CloudWatchStoreOptions } from './settings.js';

/**
 * No record of any configuration covers more than one event's 1 MiB, so the envelope holding
 * byte N starts at N - 1 MiB or later.
 */
const MAX_RECORD_BYTES = 1024 * 1024;
const URL_PATTERN = /^cloudwatch:\/\/arn:([^:]+):logs:([^:]*):([^:]*):log-group:([^:]+)(?::\*)?$/i;

/**
 * The `cloudwatch://arn:aws:logs:REGION:ACCOUNT:log-group:NAME` archive, laid out like Airflow's
 * CloudwatchTaskHandler: one log stream per attempt, named by the attempt's relative path with
 * every `:` replaced by `_` (stream names cannot hold `:`), so Airflow finds tasklog's streams,
 * and one event per line whose message is the line's text, so Airflow shows the log as it is.
 * What exactness needs beyond that travels in escapes for the few lines that need them
 * (events.ts), stamps keep the stream in order and make retries exactly-once
 * (event-times.ts), and a header names the attempt only where the stream's name
 * cannot (names.ts).
 *
 * - Reads page GetLogEvents from the head and count offsets (CloudWatch cannot seek by ours):
 *   starting at offset N costs O(N). Escapes re-synchronise the count; the assembler drops
 *   repeats and waits for gaps.
 * - stat() of a finished log reads its last event (the end escape); of a running one, the
 *   stream back from its end to the nearest escape (or the head), counting what it passes.
 * - Streams Airflow wrote itself read as Airflow shows them: Airflow 2's plain events as lines,
 *   Airflow 3's JSON events as their `event` (see `classifyStream`); tasklog does not write
 *   into an Airflow 3 stream.
 * - Streams in tasklog's earlier envelope layout stay readable and resumable.
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
  #context: Promise<CloudWatchContext> | undefined;

  constructor(options: CloudWatchStoreOptions) {
    const o = resolveCloudWatchOptions(options);
    this.logGroup = o.logGroup;
    this.region = o.region;
    this.endpoint = o.endpoint;
    this.pathTemplate = o.pathTemplate;
    this.maxAttempts = o.maxAttempts;
    this.maxPieceBytes = o.maxPieceBytes;
    this.maxBatchEvents = o.maxBatchEvents;
    this.maxBatchBytes = o.maxBatchBytes;
    this.filterFromOffset = o.filterFromOffset;
    this.retryBaseDelayMs = o.retryBaseDelayMs;
    this.maxRetryDelayMs = o.maxRetryDelayMs;
    this.#requestTimeoutMs = o.requestTimeoutMs;
    this.url = `cloudwatch://arn:aws:logs:${this.region}:${o.accountId}:log-group:${this.logGroup}`;
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
    return new CloudWatchStore({
      logGroup: m[4]!,
      region,
      accountId: m[3],
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      ...(settings.max_attempts !== undefined ? { maxAttempts: settings.max_attempts } : {}),
      ...(options.pathTemplate ? { pathTemplate: options.pathTemplate } : {}),
      ...overrides,
    });
  }

  /**
   * The attempt's log stream: its relative path with every `:` replaced by `_`, as Airflow's
   * CloudwatchTaskHandler names it. Throws InvalidInputError for a name CloudWatch refuses.
   */
  streamName(key: AttemptKey): string {
    return streamNameOf(this.pathTemplate, key);
  }

  /**
   * Creates the group and stream if needed (and the header, where the name cannot give the
   * attempt back); on an existing stream resumes after its contiguous records (one scan from
   * the head), in the layout the stream began in. Throws ConflictError if the log is already
   * complete, the stream is another attempt's or Airflow 3 wrote it; BackendUnavailableError,
   * AbortedError.
   */
  async openWriter(key: AttemptKey, options: OpenWriterOptions = {}): Promise<LogWriter> {
    const { signal } = options;
    const stream = this.streamName(key);
    const where = `log stream ${stream} in ${this.logGroup}`;
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      const state = await resumeState({ ctx, group: this.logGroup, stream, signal });
      const header = needsHeader(this.pathTemplate, key);
      if (state.layout === 'airflow3') {
        throw new ConflictError(
          `${where} holds events Airflow 3 wrote itself (JSON records); tasklog does not write into it. Let only one of them write CloudWatch (docs/AIRFLOW.md)`,
        );
      }
      if (state.header !== undefined ? !namesAttempt(state.header, key) : state.data && header) {
        throw new ConflictError(
          `${where} belongs to another attempt (${state.header === undefined ? 'named by the stream' : JSON.stringify(state.header)}): their names differ only in ":" and "_", which CloudWatch stream names cannot tell apart`,
        );
      }
      if (state.complete) throw new ConflictError(`${where} is already complete`);
      if (!state.exists) await this.#createStream(ctx, stream, signal);
      const writer = new CloudWatchLogWriter(this, ctx, key, stream, {
        layout: state.layout === 'envelope' ? 'envelope' : 'lines',
        committed: state.committed,
        lastTimestamp: state.lastTimestamp,
      });
      if (state.header === undefined && (header || state.layout === 'envelope')) {
        await writer.writeHeader();
      }
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
      const ref: StreamRef = { ctx: await this.#ctx(), group: this.logGroup, stream, signal };
      const from = offset - MAX_RECORD_BYTES;
      const filtered =
        offset >= this.filterFromOffset && from > 0 && (await streamLayout(ref)) === 'envelope';
      const items = filtered
        ? decodeAll(envelopesFrom(ref, from), 'envelope')
        : decodeAll(eventsFromHead(ref));
      const assembler = new RecordAssembler(offset);
      let stop = options.end ?? Number.POSITIVE_INFINITY;
      let size: number | undefined;
      let highest = 0;
      for await (const item of items) {
        throwIfAborted(signal);
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
      // A running log (an empty stream is one whose writer has flushed nothing yet): it ends where its records end (at the first gap, should there be one).
      if (assembler.next === offset && offset > highest) {
        throw new OffsetOutOfRangeError(offset, highest);
      }
    } catch (err) {
      throw cloudwatchError(err, this.logGroup, stream, 'read');
    }
  }

  /**
   * Complete → size and sha256 of the end record (the stream's last event, one request);
   * running → the end of what is stored, counted back from the stream's end to the nearest
   * escape (or its head); nothing → undefined.
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
      const ref: StreamRef = { ctx: await this.#ctx(), group: this.logGroup, stream, signal };
      // A finished log in today's layout ends with its end escape: one request.
      const newest = await lastEvents(ref, 1);
      if (newest === undefined) return undefined;
      const end = peekEvent('lines', newest[0]?.message);
      if (end?.kind === 'end') {
        const at = newest[0]?.ingestionTime;
        const modifiedAt = at ? { modifiedAt: new Date(at) } : {};
        return { size: end.size, complete: true, sha256: end.sha256, ...modifiedAt };
      }
      const layout = await streamLayout(ref);
      if (layout === undefined) return undefined;
      return layout === 'envelope' ? await envelopeStat(ref) : await countBack(ref, layout);
    } catch (err) {
      throw cloudwatchError(err, this.logGroup, stream, 'stat');
    }
  }

  /**
   * Every attempt with a stream in the group matching `filter`: DescribeLogStreams below the
   * (sanitized) prefix the filter fixes, then each stream's first event: a header names the
   * attempt, else the stream's name does (Airflow's own streams and empty ones included).
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
        let page: Awaited<ReturnType<typeof describeStreams>>;
        try {
          page = await describeStreams(ctx, this.logGroup, prefix, token, signal);
        } catch (err) {
          if (isNotFound(err)) return; // no group: nothing was ever written
          throw err;
        }
        for (const s of page.logStreams ?? []) {
          const name = s.logStreamName;
          if (!name) continue;
          const key = await this.#streamKey(
            { ctx, group: this.logGroup, stream: name, signal },
            wanted,
          );
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

  /** Creates the stream, and the group first if it is missing; "already exists" is success. */
  async #createStream(ctx: CloudWatchContext, stream: string, signal: AbortSignal | undefined) {
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

  /**
   * The attempt a listed stream holds: its header's (which must name this stream), else the
   * one its name stands for; undefined for one deleted since it was listed.
   */
  async #streamKey(ref: StreamRef, filter: AttemptFilter): Promise<AttemptKey | undefined> {
    let first: OutputLogEvent | undefined;
    try {
      first = await firstEvent(ref);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    // An empty stream: a writer opened it and has flushed nothing yet.
    const layout = classifyStream(first?.message);
    const item = new StreamDecoder(layout).decode(first?.message);
    if (item?.kind === 'header') {
      const key = keyOf(item.key);
      return key && this.streamName(key) === ref.stream ? key : undefined;
    }
    if (layout === 'envelope') return undefined;
    const implied = impliedKey(this.pathTemplate, ref.stream);
    return implied && listedKey(implied, filter);
  }

  /** The SDK and the clients, created on first use. */
  #ctx(): Promise<CloudWatchContext> {
    this.#context ??= createCloudWatchContext({
      region: this.region,
      endpoint: this.endpoint,
      maxAttempts: this.maxAttempts,
      requestTimeoutMs: this.#requestTimeoutMs,
    }).catch((err: unknown) => {
      this.#context = undefined;
      throw err;
    });
    return this.#context;
  }
}
