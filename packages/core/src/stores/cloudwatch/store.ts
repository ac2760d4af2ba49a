import type { AttemptKey } from '../../attempt-key.js';
import { ConflictError, InvalidInputError } from '../../errors.js';
import type { AttemptFilter } from '../../path-template.js';
import { withRetry } from '../../retry.js';
import type * as contract from '../../store.js';
import type { OpenStoreOptions } from '../registry.js';
import { operation, streamOperation } from '../shared/operation.js';
import { RecordWriter } from '../shared/record-writer.js';
import { checkReadRange, validateFilter } from '../shared/store-checks.js';
import { type CloudWatchContext, createCloudWatchContext } from './client.js';
import { cloudwatchError, errorName, isNotFound, isTransient, unlessNotFound } from './errors.js';
import { peekEvent } from './events.js';
import { listAttempts } from './listing.js';
import { needsHeader, sanitize, streamNameOf } from './names.js';
import { lastEvents, type StreamRef, streamLayout } from './pages.js';
import { countBack, envelopeStat, namesAttempt, readStream, resumeState } from './reads.js';
import {
  type CloudWatchSettings,
  type CloudWatchStoreOptions,
  type ResolvedCloudWatchOptions,
  resolveCloudWatchOptions,
} from './settings.js';
import { CloudWatchSink, digestPrefix } from './sink.js';

export type { CloudWatchSettings, CloudWatchStoreOptions } from './settings.js';

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
export class CloudWatchStore implements contract.LogStore {
  readonly url: string;
  readonly capabilities: contract.StoreCapabilities = { liveAppend: true, seekableReads: false };
  readonly logGroup: string;
  readonly region: string;
  /** The checked options with their defaults filled in. */
  readonly options: Readonly<ResolvedCloudWatchOptions>;
  #context: Promise<CloudWatchContext> | undefined;

  constructor(options: CloudWatchStoreOptions) {
    const o = resolveCloudWatchOptions(options);
    this.options = o;
    this.logGroup = o.logGroup;
    this.region = o.region;
    this.url = `cloudwatch://arn:aws:logs:${o.region}:${o.accountId}:log-group:${o.logGroup}`;
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
    return streamNameOf(this.options.pathTemplate, key);
  }

  /**
   * Creates the group and stream if needed (and the header, where the name cannot give the
   * attempt back); on an existing stream resumes after its contiguous records (one scan from
   * the head), in the layout the stream began in. Throws ConflictError if the log is already
   * complete, the stream is another attempt's or Airflow 3 wrote it; BackendUnavailableError,
   * AbortedError.
   */
  async openWriter(
    key: AttemptKey,
    { signal }: contract.OpenWriterOptions = {},
  ): Promise<contract.LogWriter> {
    const stream = this.streamName(key);
    const where = `log stream ${stream} in ${this.logGroup}`;
    const mapError = (err: unknown) =>
      cloudwatchError(err, this.logGroup, stream, 'open a writer for');
    return operation(signal, mapError, async () => {
      const ctx = await this.#ctx();
      const state = await resumeState({ ctx, group: this.logGroup, stream, signal });
      const header = needsHeader(this.options.pathTemplate, key);
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
      const sink = new CloudWatchSink(this, ctx, stream, {
        layout: state.layout === 'envelope' ? 'envelope' : 'lines',
        lastTimestamp: state.lastTimestamp,
      });
      const writer = new RecordWriter(sink, {
        committed: state.committed,
        // Resumed: the bytes before this writer are only in CloudWatch.
        prefix: (size) => digestPrefix(this, key, size),
      });
      if (state.header === undefined && (header || state.layout === 'envelope')) {
        await writer.sendFirst([sink.header(key)]);
      }
      return writer;
    });
  }

  /**
   * Streams the log from `offset`, in order, each byte once (records are de-duplicated and
   * ordered by offset). Throws NotFoundError (no stream, or a missing log group: nothing was
   * ever written), OffsetOutOfRangeError, IntegrityError (a finished log with a gap),
   * AbortedError, BackendUnavailableError.
   */
  async *read(
    key: AttemptKey,
    options: contract.ReadOptions = {},
  ): AsyncGenerator<contract.LogChunk> {
    const { offset, signal } = checkReadRange(options);
    const stream = this.streamName(key);
    const mapError = (err: unknown) => cloudwatchError(err, this.logGroup, stream, 'read');
    yield* streamOperation(signal, mapError, () =>
      this.#readFrom(key, stream, offset, options.end, signal),
    );
  }

  /**
   * Complete → size and sha256 of the end record (the stream's last event, one request);
   * running → the end of what is stored, counted back from the stream's end to the nearest
   * escape (or its head); nothing → undefined.
   * Throws BackendUnavailableError, AbortedError.
   */
  async stat(
    key: AttemptKey,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<contract.LogStat | undefined> {
    const stream = this.streamName(key);
    const mapError = (err: unknown) => cloudwatchError(err, this.logGroup, stream, 'stat');
    return operation(signal, mapError, async () => {
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
    });
  }

  /**
   * Every attempt with a stream in the group matching `filter`: DescribeLogStreams below the
   * (sanitized) prefix the filter fixes, then each stream's first event: a header names the
   * attempt, else the stream's name does (Airflow's own streams and empty ones included).
   * Throws BackendUnavailableError, AbortedError.
   */
  async *list(
    filter: AttemptFilter,
    { signal }: contract.ListOptions = {},
  ): AsyncGenerator<AttemptKey> {
    const wanted = validateFilter(filter);
    const prefix = sanitize(this.options.pathTemplate.prefix(wanted));
    const mapError = (err: unknown) => cloudwatchError(err, this.logGroup, prefix, 'list');
    yield* streamOperation(signal, mapError, () => this.#listFrom(wanted, prefix, signal));
  }

  /** DeleteLogStream; a missing stream or group is not an error. */
  async delete(key: AttemptKey, { signal }: { signal?: AbortSignal } = {}): Promise<void> {
    const stream = this.streamName(key);
    const mapError = (err: unknown) => cloudwatchError(err, this.logGroup, stream, 'delete');
    return operation(signal, mapError, async () => {
      const ctx = await this.#ctx();
      await ctx.client
        .send(
          new ctx.sdk.DeleteLogStreamCommand({
            logGroupName: this.logGroup,
            logStreamName: stream,
          }),
          { abortSignal: signal },
        )
        .catch(unlessNotFound);
    });
  }

  /**
   * DescribeLogStreams (limit 1) on the group: checks endpoint, credentials and permissions. A
   * missing group is fine: the first write creates it. Throws BackendUnavailableError.
   */
  async ping({ signal }: { signal?: AbortSignal } = {}): Promise<void> {
    const mapError = (err: unknown) => cloudwatchError(err, this.logGroup, undefined, 'reach');
    return operation(signal, mapError, async () => {
      const ctx = await this.#ctx();
      await ctx.client
        .send(new ctx.sdk.DescribeLogStreamsCommand({ logGroupName: this.logGroup, limit: 1 }), {
          abortSignal: signal,
        })
        .catch(unlessNotFound);
    });
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
      maxAttempts: this.options.maxAttempts,
      baseDelayMs: this.options.retryBaseDelayMs,
      maxDelayMs: this.options.maxRetryDelayMs,
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

  async *#readFrom(
    key: AttemptKey,
    stream: string,
    offset: number,
    end: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<contract.LogChunk> {
    const ref: StreamRef = { ctx: await this.#ctx(), group: this.logGroup, stream, signal };
    const stat = () => this.stat(key, { signal });
    yield* readStream(ref, key, {
      offset,
      end,
      filterFromOffset: this.options.filterFromOffset,
      stat,
    });
  }

  async *#listFrom(filter: AttemptFilter, prefix: string, signal: AbortSignal | undefined) {
    const where = { group: this.logGroup, prefix, pathTemplate: this.options.pathTemplate };
    yield* listAttempts(await this.#ctx(), where, filter, signal);
  }

  /** The SDK and the clients, created on first use. */
  #ctx(): Promise<CloudWatchContext> {
    this.#context ??= createCloudWatchContext({
      region: this.region,
      endpoint: this.options.endpoint,
      maxAttempts: this.options.maxAttempts,
      requestTimeoutMs: this.options.requestTimeoutMs,
    }).catch((err: unknown) => {
      this.#context = undefined;
      throw err;
    });
    return this.#context;
  }
}
