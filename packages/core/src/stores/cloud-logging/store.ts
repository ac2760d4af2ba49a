import { createHash, randomBytes } from 'node:crypto';
import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import {
  AbortedError,
  ConflictError,
  IntegrityError,
  InvalidInputError,
  NotFoundError,
  OffsetOutOfRangeError,
} from '../../errors.js';
import { type AttemptFilter, PathTemplate } from '../../path-template.js';
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
import { type LogRecord, RecordAssembler } from '../shared/log-records.js';
import { airflowLog, airflowMessages, airflowTries, type PageReader } from './airflow-read.js';
import { type CallOptions, type Context, connectLogging } from './client.js';
import {
  type AirflowDateLabels,
  type ApiEntry,
  type ApiEntryOut,
  attemptLabels,
  decimal,
  EntryCutter,
  formatMicros,
  insertId,
  L,
  MAX_ENTRY_BYTES,
  MAX_PIECE_BYTES,
  parseRecord,
  quote,
  timestampMicros,
} from './entries.js';
import { abortable, cloudLoggingError, isRetryable } from './errors.js';
import { type LogicalDateSource, LogicalDates } from './logical-date.js';
import { CloudLoggingWriter } from './writer.js';

export { MAX_ENTRY_BYTES, MAX_PIECE_BYTES } from './entries.js';
export type { LogicalDateSource } from './logical-date.js';

/** The `[stackdriver]` config section (snake_case keys, as in the TOML file). */
export interface StackdriverConfig {
  /** Google Cloud project; default from Application Default Credentials / GOOGLE_CLOUD_PROJECT. */
  project_id?: string;
  /** Monitored resource type of written entries; default `global` (as Airflow). */
  resource_type?: string;
  /** Monitored resource labels of written entries; default none. */
  resource_labels?: Record<string, string>;
  /** Endpoint override: `host[:port]` (TLS + ADC) or `http://host:port` (plaintext, no auth: emulators). */
  api_endpoint?: string;
  /** `grpc` (the SDK's default) or `rest`. */
  transport?: 'grpc' | 'rest';
  /** Tries per request, the first included; default 8. */
  max_attempts?: number;
}

export interface CloudLoggingStoreOptions {
  /**
   * The log (the `LOG_NAME` of `stackdriver://LOG_NAME`, Airflow's `gcp_log_name`, default there
   * `airflow`): letters, digits, `/ _ - .`, under 512 characters. All attempts share it; labels
   * tell them apart.
   */
  logName: string;
  /** Google Cloud project; default Application Default Credentials' project. */
  projectId?: string;
  /** Monitored resource type of written entries; default `global`. Reads do not filter on it. */
  resourceType?: string;
  /** Monitored resource labels of written entries; default none. */
  resourceLabels?: Record<string, string>;
  /**
   * Endpoint override. `http://host:port` talks plaintext without credentials (an emulator);
   * `host:port` or `https://host:port` uses TLS with Application Default Credentials.
   * Default the SDK's `logging.googleapis.com`.
   */
  apiEndpoint?: string;
  /** `grpc` (default, the SDK's own default) or `rest` (HTTP/1.1 JSON). */
  transport?: 'grpc' | 'rest';
  /** Tries per request, the first included, with full-jitter backoff; default 8. */
  maxAttempts?: number;
  /** Longest sleep between two tries, in ms; default 20,000. */
  maxRetryDelayMs?: number;
  /** Deadline of one call, in ms; default 60,000. */
  requestTimeoutMs?: number;
  /**
   * Most log bytes in one entry; default (and maximum) 240 KiB, see MAX_PIECE_BYTES. A piece
   * whose entry would pass the service's limit is cut shorter anyway.
   */
  maxPieceBytes?: number;
  /** Entries per WriteLogEntries call; default 1000. */
  maxBatchEntries?: number;
  /** Estimated (JSON) bytes per WriteLogEntries call; default 5 MB, at most 9 MB. */
  maxBatchBytes?: number;
  /** Entries per ListLogEntries page, 1–1000; default 1000 (the API's maximum). */
  pageSize?: number;
  /** Where each attempt's log lives; only used to derive stable insertIds. Default Airflow's layout. */
  pathTemplate?: PathTemplate;
  /** Clock in ms for entry timestamps; default Date.now. */
  now?: () => number;
  /**
   * Logical dates of runs whose id holds none (see logical-date.ts): Airflow's
   * metadata database, or a function opening it on first use. The store closes it.
   */
  airflowDb?: LogicalDateSource | (() => Promise<LogicalDateSource>);
  /** Where warnings go (an attempt written without a logical date); default process.emitWarning. */
  warn?: (message: string) => void;
}

/** entries.write takes at most 10 MB; the JSON estimate stays below that with room to spare. */
const MAX_BATCH_BYTES = 9 * 1000 * 1000;
const DEFAULT_BATCH_BYTES = 5 * 1000 * 1000;
const DEFAULT_BATCH_ENTRIES = 1000;
const MAX_RESOURCE_LABEL_BYTES = 4 * 1024;
const LOG_NAME = /^[A-Za-z0-9/_\-.]{1,511}$/;
/**
 * `log.getEntries` (and the service) restrict a filter without a timestamp condition to the last
 * 24 hours; this explicit condition keeps older attempts readable.
 */
const ALL_TIME = 'timestamp >= "1970-01-01T00:00:00Z"';

/** What a page of an attempt's entries says, entry by entry. */
type Parsed =
  | { kind: 'record'; record: LogRecord; visible: boolean; micros: number }
  | { kind: 'end'; size: number; sha256: string; micros: number }
  | { kind: 'tombstone'; micros: number };

/**
 * The `stackdriver://LOG_NAME` archive in Google Cloud Logging, laid out for Airflow's
 * StackdriverTaskHandler (entries.ts): one entry per line in log LOG_NAME, resource
 * `global`, Airflow's labels `dag_id`, `task_id`, `try_number` and the run's logical date
 * (`logical_date` and `execution_date`, see logical-date.ts), tasklog's `run_id`,
 * `map_index`, `offset`, `length`, the line in `jsonPayload.message`.
 *
 * - Each entry has a deterministic `insertId` (sha256 of relative path, kind, offset, length)
 *   and a timestamp that grows by at least 1 µs per entry along the log (max(clock, previous +
 *   1 µs)), so timestamp order is offset order. A retried write resends the same entries with
 *   the same insertIds and timestamps, which the service de-duplicates.
 * - A finished log ends with an entry labelled `tasklog_end=true`, `size`, `sha256`.
 * - Cloud Logging cannot delete single entries (DeleteLog drops the whole log, every attempt),
 *   so delete() writes a tombstone entry (`tasklog_deleted=true`); readers ignore everything of
 *   the attempt up to the newest tombstone. The entries stay until the bucket's retention ends.
 * - Labels compare as strings, so reads cannot start at an offset: read(offset) pages from the
 *   attempt's first entry and skips, O(offset) (`seekableReads: false`).
 * - An attempt tasklog holds no entries of is looked for among the entries Airflow's own handler
 *   wrote (airflow-read.ts), found through its run's logical date.
 * - The generated `LoggingServiceV2Client` of `@google-cloud/logging` is used directly, not
 *   `Log.write` / `Log.getEntries`: those add a diagnostic entry on the first write of a
 *   process and silently restrict filters to the last 24 h; filters here are explicit
 *   (`timestamp >= 1970`) anyway.
 */
export class CloudLoggingStore implements LogStore {
  readonly url: string;
  readonly capabilities: StoreCapabilities = { liveAppend: true, seekableReads: false };
  readonly logName: string;
  readonly pathTemplate: PathTemplate;
  readonly maxPieceBytes: number;
  readonly maxBatchEntries: number;
  readonly maxBatchBytes: number;
  readonly #options: CloudLoggingStoreOptions;
  readonly #resource: { type: string; labels: Record<string, string> };
  readonly #pageSize: number;
  readonly #now: () => number;
  readonly #dates: LogicalDates;
  #context: Promise<Context> | undefined;

  constructor(options: CloudLoggingStoreOptions) {
    if (typeof options.logName !== 'string' || !LOG_NAME.test(options.logName)) {
      throw new InvalidInputError(
        `Cloud Logging log name must be 1-511 letters, digits, "/", "_", "-" or ".", got ${JSON.stringify(options.logName)}`,
      );
    }
    const int = (name: string, v: number | undefined, def: number, min: number, max: number) => {
      const n = v ?? def;
      if (!Number.isSafeInteger(n) || n < min || n > max) {
        throw new InvalidInputError(
          `stackdriver ${name} must be an integer ${min}-${max}, got ${v}`,
        );
      }
      return n;
    };
    this.maxPieceBytes = int(
      'maxPieceBytes',
      options.maxPieceBytes,
      MAX_PIECE_BYTES,
      4,
      MAX_PIECE_BYTES,
    );
    this.maxBatchEntries = int(
      'maxBatchEntries',
      options.maxBatchEntries,
      DEFAULT_BATCH_ENTRIES,
      1,
      100_000,
    );
    this.maxBatchBytes = int(
      'maxBatchBytes',
      options.maxBatchBytes,
      DEFAULT_BATCH_BYTES,
      MAX_ENTRY_BYTES,
      MAX_BATCH_BYTES,
    );
    this.#pageSize = int('pageSize', options.pageSize, 1000, 1, 1000);
    int('maxAttempts', options.maxAttempts, 8, 1, 100);
    const labels = options.resourceLabels ?? {};
    if (Buffer.byteLength(JSON.stringify(labels)) > MAX_RESOURCE_LABEL_BYTES) {
      throw new InvalidInputError(`stackdriver resource labels must stay under 4 KiB`);
    }
    this.#resource = { type: options.resourceType ?? 'global', labels: { ...labels } };
    if (
      options.transport !== undefined &&
      options.transport !== 'grpc' &&
      options.transport !== 'rest'
    ) {
      throw new InvalidInputError(
        `stackdriver transport must be "grpc" or "rest", got ${options.transport}`,
      );
    }
    this.logName = options.logName;
    this.pathTemplate = options.pathTemplate ?? new PathTemplate();
    this.#now = options.now ?? Date.now;
    this.#options = options;
    this.#dates = new LogicalDates({
      source: options.airflowDb,
      warn: options.warn ?? ((message) => process.emitWarning(message, 'TasklogWarning')),
    });
    this.url = `stackdriver://${options.logName}`;
  }

  /**
   * `stackdriver://LOG_NAME`; settings from the `[stackdriver]` config section, logical dates
   * from Airflow's metadata database when `airflowDbUrl` (`agent.airflow_db_url`) is given,
   * opened read-only on first use.
   */
  static fromUrl(
    url: string,
    options: OpenStoreOptions = {},
    overrides: Partial<CloudLoggingStoreOptions> = {},
  ): CloudLoggingStore {
    const m = /^stackdriver:\/\/([^?#]+)$/i.exec(url);
    if (!m) {
      throw new InvalidInputError(
        `Cloud Logging store URL must look like stackdriver://LOG_NAME, got ${JSON.stringify(url)}`,
      );
    }
    let logName: string;
    try {
      logName = decodeURIComponent(m[1]!.replace(/^\/+|\/+$/g, ''));
    } catch (err) {
      throw new InvalidInputError(`bad escape in store URL ${url}`, { cause: err });
    }
    const cfg: StackdriverConfig = options.stackdriver ?? {};
    const dbUrl = options.airflowDbUrl;
    return new CloudLoggingStore({
      logName,
      pathTemplate: options.pathTemplate,
      projectId: cfg.project_id,
      resourceType: cfg.resource_type,
      resourceLabels: cfg.resource_labels,
      apiEndpoint: cfg.api_endpoint,
      transport: cfg.transport,
      maxAttempts: cfg.max_attempts,
      airflowDb:
        dbUrl === undefined
          ? undefined
          : async () => (await import('../../airflow/airflow-db.js')).openAirflowDb(dbUrl),
      ...overrides,
    });
  }

  /** Throws ConflictError if the log is complete; BackendUnavailableError, AbortedError. */
  async openWriter(key: AttemptKey, options: OpenWriterOptions = {}): Promise<LogWriter> {
    const { signal } = options;
    const rel = this.pathTemplate.render(key);
    const where = this.#where(key);
    try {
      const ctx = await this.#ctx(signal);
      const tombstone = await this.#latestTombstone(ctx, key, signal);
      // Resuming: the contiguous records from offset 0 are what an earlier writer committed.
      // Their bytes are hashed on the way, so finish() need not read them back; the bytes after
      // the last entry Airflow shows are the unfinished line's hidden parts, kept for its entry.
      const assembler = new RecordAssembler(0);
      const hash = createHash('sha256');
      let lastMicros = tombstone ?? 0;
      let found = false;
      let shownEnd = 0;
      const tail = { start: 0, parts: [] as Buffer[] };
      for await (const item of this.#entries(ctx, key, tombstone, signal)) {
        if (item.kind === 'end') throw new ConflictError(`log ${where} is already complete`);
        if (item.kind !== 'record') continue;
        found = true;
        lastMicros = Math.max(lastMicros, item.micros);
        for (const chunk of assembler.add(item.record)) {
          hash.update(chunk.bytes);
          tail.parts.push(Buffer.from(chunk.bytes));
        }
        if (item.visible) shownEnd = Math.max(shownEnd, item.record.offset + item.record.length);
        while (tail.parts.length > 0 && tail.start + tail.parts[0]!.length <= shownEnd) {
          tail.start += tail.parts.shift()!.length;
        }
        if (tail.parts.length > 0 && tail.start < shownEnd) {
          tail.parts[0] = tail.parts[0]!.subarray(shownEnd - tail.start);
          tail.start = shownEnd;
        }
      }
      const dates = await this.#dates.resolve(key);
      if (dates.missing) this.#dates.warnOnce(JSON.stringify(key), where, dates.missing);
      const labels = attemptLabels(key, dates.labels);
      if (!found) {
        // An empty record at offset 0 makes a freshly opened attempt exist for read(), stat()
        // and list() before its first flush (readers skip it: it covers no bytes).
        lastMicros = Math.max(this.nowMicros(), lastMicros + 1);
        const marker = this.#entry(labels, lastMicros, insertId(rel, 'open', 0, 0), {
          [L.offset]: '0',
          [L.length]: '0',
        });
        await this.#write(ctx, [marker], signal);
      }
      const cutter = new EntryCutter({
        labels,
        logName: ctx.logName,
        resource: this.#resource,
        maxPieceBytes: this.maxPieceBytes,
      });
      const pending =
        tail.parts.length > 0
          ? { offset: tail.start, bytes: Buffer.concat(tail.parts) }
          : undefined;
      return new CloudLoggingWriter(
        {
          maxBatchEntries: this.maxBatchEntries,
          maxBatchBytes: this.maxBatchBytes,
          nowMicros: () => this.nowMicros(),
          write: (entries) => this.#write(ctx, entries, undefined),
        },
        cutter,
        labels,
        key,
        rel,
        this.maxPieceBytes,
        { committed: assembler.next, hash, lastMicros, pending },
      );
    } catch (err) {
      throw cloudLoggingError(err, where, 'open a writer for');
    }
  }

  /**
   * Streams the log from `offset`, paging from the attempt's first entry (O(offset), see the
   * class comment); an attempt tasklog never wrote, as Airflow's own entries show it. Throws
   * NotFoundError, OffsetOutOfRangeError, IntegrityError (a finished log with a hole),
   * BackendUnavailableError, AbortedError.
   */
  async *read(key: AttemptKey, options: ReadOptions = {}): AsyncGenerator<LogChunk> {
    const { signal } = options;
    const offset = options.offset ?? 0;
    const end = options.end;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new InvalidInputError(`read offset must be an integer >= 0, got ${offset}`);
    }
    if (end !== undefined && (!Number.isSafeInteger(end) || end < offset)) {
      throw new InvalidInputError(`read end must be an integer >= offset (${offset}), got ${end}`);
    }
    const where = this.#where(key);
    try {
      const ctx = await this.#ctx(signal);
      const tombstone = await this.#latestTombstone(ctx, key, signal);
      // From 0, so holes before `offset` are seen and the size is known at the end.
      const assembler = new RecordAssembler(0);
      let found = false;
      let complete: { size: number } | undefined;
      let newest = tombstone;
      // A second round picks up what a running writer stored while the first one was read
      // (e.g. the last bytes and the end entry of finish()); two rounds at most, so a read
      // always ends.
      for (let round = 0; round < 2 && !complete; round++) {
        if (round === 1 && !found) break;
        for await (const item of this.#entries(ctx, key, newest, signal)) {
          newest = Math.max(newest ?? 0, item.micros);
          if (item.kind === 'tombstone') continue;
          found = true;
          if (item.kind === 'end') {
            complete = { size: item.size };
            continue;
          }
          for (const chunk of assembler.add(item.record)) {
            const from = Math.max(chunk.offset, offset);
            const to = Math.min(chunk.offset + chunk.bytes.length, end ?? Number.POSITIVE_INFINITY);
            if (to > from) {
              yield {
                offset: from,
                bytes: chunk.bytes.subarray(from - chunk.offset, to - chunk.offset),
              };
            }
          }
          if (end !== undefined && assembler.next >= end) return;
        }
      }
      if (!found) {
        yield* this.#readAirflow(ctx, key, tombstone, offset, end, signal);
        return;
      }
      if (complete && assembler.next !== complete.size) {
        throw new IntegrityError(
          `log ${where} is complete with ${complete.size} bytes but its records cover only ${assembler.next} contiguous bytes`,
        );
      }
      const size = assembler.next;
      if (offset > size) throw new OffsetOutOfRangeError(offset, size);
    } catch (err) {
      throw cloudLoggingError(err, where, 'read');
    }
  }

  /**
   * Complete → size and sha256 of the end entry. Running → the end of the entry with the newest
   * timestamp, which is the highest offset because timestamps grow along the log (one query,
   * no scan; a running log with a hole would report past it). Airflow's own entries: the size of
   * its view (a scan), never complete. Throws BackendUnavailableError.
   */
  async stat(
    key: AttemptKey,
    options: { signal?: AbortSignal } = {},
  ): Promise<LogStat | undefined> {
    const { signal } = options;
    try {
      const ctx = await this.#ctx(signal);
      const item = await this.#newest(ctx, key, signal);
      if (item?.kind === 'tombstone') return undefined;
      if (!item) return await this.#statAirflow(ctx, key, undefined, signal);
      const modifiedAt = new Date(Math.floor(item.micros / 1000));
      if (item.kind === 'end')
        return { size: item.size, complete: true, sha256: item.sha256, modifiedAt };
      return { size: item.record.offset + item.record.length, complete: false, modifiedAt };
    } catch (err) {
      throw cloudLoggingError(err, this.#where(key), 'stat');
    }
  }

  /**
   * Every attempt with entries matching `filter`: the first record (`offset="0"`, also the end
   * entry of an empty log) and the tombstones of matching attempts, paged. An attempt is listed
   * when its newest first record is newer than its newest tombstone, so keys are collected until
   * the last page (memory: one small entry per attempt). With `dagId` and `runId` given, the
   * tries of Airflow's own entries of that run are listed too (with the map index asked for, else
   * -1: Airflow's labels have none). Throws BackendUnavailableError.
   */
  async *list(filter: AttemptFilter, options: ListOptions = {}): AsyncGenerator<AttemptKey> {
    const { signal } = options;
    const parts: string[] = [];
    const fields: [keyof AttemptKey, string][] = [
      ['dagId', L.dagId],
      ['runId', L.runId],
      ['taskId', L.taskId],
      ['mapIndex', L.mapIndex],
      ['tryNumber', L.tryNumber],
    ];
    for (const [field, label] of fields) {
      const v = filter[field];
      if (v !== undefined) parts.push(`labels.${label}=${quote(String(v))}`);
    }
    let attempts: Map<string, { key: AttemptKey; started: number; deleted: number }>;
    const airflow: AttemptKey[] = [];
    try {
      const ctx = await this.#ctx(signal);
      const query = [
        `logName=${quote(ctx.logName)}`,
        `(labels.${L.offset}="0" OR labels.${L.deleted}="true")`,
        ...parts,
        ALL_TIME,
      ].join(' AND ');
      attempts = new Map();
      let token: string | undefined;
      do {
        const page = await this.#page(ctx, query, 'timestamp asc', this.#pageSize, token, signal);
        for (const entry of page.entries) {
          const key = keyOf(entry.labels ?? {});
          if (!key || entry.logName !== ctx.logName || !matches(key, filter)) continue;
          const parsed = this.#parse(entry, key);
          if (!parsed) continue;
          const state = attempts.get(idOf(key)) ?? { key, started: -1, deleted: -1 };
          if (parsed.kind === 'tombstone') state.deleted = Math.max(state.deleted, parsed.micros);
          else if (
            (parsed.kind === 'record' && parsed.record.offset === 0) ||
            parsed.kind === 'end'
          ) {
            state.started = Math.max(state.started, parsed.micros);
          }
          attempts.set(idOf(key), state);
        }
        token = page.next;
      } while (token);
      if (filter.dagId !== undefined && filter.runId !== undefined) {
        const { dagId, runId } = filter;
        const dates = await this.#dates.resolve({ dagId, runId });
        const ids = { dagId, taskId: filter.taskId, tryNumber: filter.tryNumber };
        const tries = airflowTries(this.#pageReader(ctx), ctx.logName, ids, dates.labels, signal);
        for await (const { taskId, tryNumber } of tries) {
          const mapIndex = filter.mapIndex ?? -1;
          const key = attemptKey({ dagId, runId, taskId, mapIndex, tryNumber });
          if (attempts.has(idOf(key))) continue;
          if (await this.#hasAirflow(ctx, key, dates.labels, signal)) airflow.push(key);
        }
      }
    } catch (err) {
      throw cloudLoggingError(err, `log ${this.logName}`, 'list');
    }
    for (const { key, started, deleted } of attempts.values()) {
      if (started > deleted) yield key;
    }
    yield* airflow;
  }

  /**
   * Writes a tombstone newer than the attempt's newest entry (see the class comment); nothing
   * when the attempt has no entries or is already deleted. Throws BackendUnavailableError.
   */
  async delete(key: AttemptKey, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    try {
      const ctx = await this.#ctx(signal);
      const newest = await this.#newest(ctx, key, signal);
      if (newest?.kind === 'tombstone') return;
      let micros: number;
      if (newest) micros = newest.micros;
      else {
        const airflow = await this.#statAirflow(ctx, key, undefined, signal);
        if (!airflow) return;
        micros = (airflow.modifiedAt?.getTime() ?? 0) * 1000;
      }
      const entry = this.#entry(
        attemptLabels(key, {}),
        Math.max(this.nowMicros(), micros + 1),
        randomBytes(12).toString('hex'),
        { [L.deleted]: 'true' },
      );
      await this.#write(ctx, [entry], signal);
    } catch (err) {
      throw cloudLoggingError(err, this.#where(key), 'delete');
    }
  }

  /** One ListLogEntries call on the log. Throws BackendUnavailableError. */
  async ping(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    try {
      const ctx = await this.#ctx(signal);
      await this.#page(
        ctx,
        `logName=${quote(ctx.logName)} AND ${ALL_TIME}`,
        'timestamp desc',
        1,
        undefined,
        signal,
      );
    } catch (err) {
      throw cloudLoggingError(err, `log ${this.logName}`, 'reach');
    }
  }

  async close(): Promise<void> {
    await this.#dates.close();
    const ctx = this.#context;
    this.#context = undefined;
    if (!ctx) return;
    const resolved = await ctx.catch(() => undefined);
    await resolved?.client.close().catch(() => undefined);
  }

  /** The clock in µs. */
  nowMicros(): number {
    return Math.floor(this.#now() * 1000);
  }

  // --- internals ------------------------------------------------------------------------------

  /** A marker entry (no payload Airflow shows) in the generated client's protobuf object form. */
  #entry(
    labels: Record<string, string>,
    micros: number,
    id: string,
    extra: Record<string, string>,
  ): ApiEntryOut {
    return {
      timestamp: { seconds: Math.floor(micros / 1e6), nanos: (micros % 1e6) * 1000 },
      insertId: id,
      labels: { ...labels, ...extra },
      textPayload: '',
    };
  }

  /** One WriteLogEntries call, retried with backoff; the same entries on every try. */
  async #write(
    ctx: Context,
    entries: ApiEntryOut[],
    signal: AbortSignal | undefined,
  ): Promise<void> {
    // partialSuccess false: a batch is stored whole or not at all, so committedOffset is exact.
    const request = {
      logName: ctx.logName,
      resource: this.#resource,
      entries,
      partialSuccess: false,
    };
    await this.#retry((options) => ctx.client.writeLogEntries(request, options), signal);
  }

  async #retry<T>(
    call: (options: CallOptions) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    const timeout = this.#options.requestTimeoutMs ?? 60_000;
    return withRetry(() => abortable(call({ retry: null, timeout }), signal), {
      maxAttempts: this.#options.maxAttempts ?? 8,
      maxDelayMs: this.#options.maxRetryDelayMs ?? 20_000,
      retryable: isRetryable,
      signal,
    });
  }

  #where(key: AttemptKey): string {
    const map = key.mapIndex >= 0 ? ` map_index=${key.mapIndex}` : '';
    return `stackdriver://${this.logName} dag_id=${key.dagId} run_id=${key.runId} task_id=${key.taskId}${map} try_number=${key.tryNumber}`;
  }

  #ctx(signal: AbortSignal | undefined): Promise<Context> {
    if (signal?.aborted)
      return Promise.reject(new AbortedError('aborted', { cause: signal.reason }));
    this.#context ??= connectLogging({
      logName: this.logName,
      projectId: this.#options.projectId,
      apiEndpoint: this.#options.apiEndpoint,
      transport: this.#options.transport,
    }).catch((err: unknown) => {
      // A failed start leaves the SDK client unusable; the next call starts over.
      this.#context = undefined;
      throw err;
    });
    return this.#context;
  }

  /** The filter for one attempt's entries, newer than `after` (µs) when given. */
  #attemptFilter(ctx: Context, key: AttemptKey, after: number | undefined, extra?: string): string {
    return [
      `logName=${quote(ctx.logName)}`,
      `labels.${L.dagId}=${quote(key.dagId)}`,
      `labels.${L.runId}=${quote(key.runId)}`,
      `labels.${L.taskId}=${quote(key.taskId)}`,
      `labels.${L.mapIndex}=${quote(String(key.mapIndex))}`,
      `labels.${L.tryNumber}=${quote(String(key.tryNumber))}`,
      ...(extra ? [extra] : []),
      after === undefined ? ALL_TIME : `timestamp > ${quote(formatMicros(after))}`,
    ].join(' AND ');
  }

  async #page(
    ctx: Context,
    filter: string,
    orderBy: string,
    pageSize: number,
    pageToken: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ entries: ApiEntry[]; next: string | undefined }> {
    const request = {
      resourceNames: [`projects/${ctx.project}`],
      filter,
      orderBy,
      pageSize,
      ...(pageToken ? { pageToken } : {}),
    };
    const [entries, , response] = await this.#retry(
      (options) => ctx.client.listLogEntries(request, { ...options, autoPaginate: false }),
      signal,
    );
    return { entries: entries ?? [], next: response?.nextPageToken || undefined };
  }

  #pageReader(ctx: Context): PageReader {
    return (filter, orderBy, pageSize, token, signal) =>
      this.#page(ctx, filter, orderBy, pageSize, token, signal);
  }

  /**
   * The attempt's newest entry that tasklog wrote (record, end mark or tombstone). Entries of
   * others under the same labels are skipped, so this pages backwards past them; normally the
   * first entry of the first page decides.
   */
  async #newest(ctx: Context, key: AttemptKey, signal: AbortSignal | undefined) {
    const filter = this.#attemptFilter(ctx, key, undefined);
    let token: string | undefined;
    let size = 1;
    do {
      const page = await this.#page(ctx, filter, 'timestamp desc', size, token, signal);
      const item = page.entries.map((e) => this.#parse(e, key)).find((p) => p !== undefined);
      if (item) return item;
      token = page.next;
      size = this.#pageSize;
    } while (token);
    return undefined;
  }

  /** Newest tombstone of the attempt in µs, or undefined. */
  async #latestTombstone(ctx: Context, key: AttemptKey, signal: AbortSignal | undefined) {
    const page = await this.#page(
      ctx,
      this.#attemptFilter(ctx, key, undefined, `labels.${L.deleted}="true"`),
      'timestamp desc',
      1,
      undefined,
      signal,
    );
    const item = page.entries.map((e) => this.#parse(e, key)).find((p) => p?.kind === 'tombstone');
    return item?.micros;
  }

  /** The attempt's entries after `after` (µs), oldest first, paged. */
  async *#entries(
    ctx: Context,
    key: AttemptKey,
    after: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Parsed> {
    const filter = this.#attemptFilter(ctx, key, after);
    let token: string | undefined;
    do {
      const page = await this.#page(ctx, filter, 'timestamp asc', this.#pageSize, token, signal);
      for (const entry of page.entries) {
        if (entry.logName !== ctx.logName) continue;
        const parsed = this.#parse(entry, key);
        if (parsed) yield parsed;
      }
      token = page.next;
    } while (token);
  }

  /** Airflow's own entries of the attempt as bytes (see airflow-read.ts). */
  async *#readAirflow(
    ctx: Context,
    key: AttemptKey,
    tombstone: number | undefined,
    offset: number,
    end: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<LogChunk> {
    const dates = await this.#dates.resolve(key);
    const messages = airflowMessages(
      this.#pageReader(ctx),
      ctx.logName,
      key,
      dates.labels,
      tombstone,
      this.#pageSize,
      signal,
    );
    const log = airflowLog(messages, offset, end);
    let step = await log.next();
    while (!step.done) {
      yield step.value;
      step = await log.next();
    }
    const { size, found } = step.value;
    if (!found) throw new NotFoundError(`no log stored for ${this.#where(key)}`);
    if (offset > size) throw new OffsetOutOfRangeError(offset, size);
  }

  /**
   * Whether Airflow's own entries of the attempt show anything (after a tombstone tasklog wrote
   * for it: a deleted attempt stays hidden unless Airflow wrote again).
   */
  async #hasAirflow(
    ctx: Context,
    key: AttemptKey,
    dates: AirflowDateLabels,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const tombstone = await this.#latestTombstone(ctx, key, signal);
    const messages = airflowMessages(
      this.#pageReader(ctx),
      ctx.logName,
      key,
      dates,
      tombstone,
      this.#pageSize,
      signal,
    );
    for await (const _ of messages) return true;
    return false;
  }

  /** Size and newest timestamp of Airflow's own entries of the attempt, or undefined. */
  async #statAirflow(
    ctx: Context,
    key: AttemptKey,
    known: AirflowDateLabels | undefined,
    signal: AbortSignal | undefined,
  ): Promise<LogStat | undefined> {
    const dates = known ?? (await this.#dates.resolve(key)).labels;
    const tombstone = await this.#latestTombstone(ctx, key, signal);
    let size = -1;
    let newest = 0;
    for await (const { message, micros } of airflowMessages(
      this.#pageReader(ctx),
      ctx.logName,
      key,
      dates,
      tombstone,
      this.#pageSize,
      signal,
    )) {
      size += Buffer.byteLength(message) + 1;
      newest = Math.max(newest, micros);
    }
    if (size < 0) return undefined;
    return { size, complete: false, modifiedAt: new Date(Math.floor(newest / 1000)) };
  }

  /**
   * An entry of `key` as a record, end mark or tombstone; undefined for anything else (another
   * attempt whose labels differ only in case — the query language compares strings
   * case-insensitively — or an entry written by someone else, e.g. Airflow itself).
   */
  #parse(entry: ApiEntry, key: AttemptKey): Parsed | undefined {
    const labels = entry.labels ?? {};
    if (
      labels[L.dagId] !== key.dagId ||
      labels[L.runId] !== key.runId ||
      labels[L.taskId] !== key.taskId ||
      labels[L.mapIndex] !== String(key.mapIndex) ||
      labels[L.tryNumber] !== String(key.tryNumber)
    ) {
      return undefined;
    }
    const micros = timestampMicros(entry.timestamp);
    if (labels[L.deleted] === 'true') return { kind: 'tombstone', micros };
    if (labels[L.end] === 'true') {
      const size = decimal(labels[L.size]);
      const sha256 = labels[L.sha256];
      if (size === undefined || !/^[0-9a-f]{64}$/.test(sha256 ?? '')) return undefined;
      return { kind: 'end', size, sha256: sha256!, micros };
    }
    const parsed = parseRecord(entry);
    return parsed && { kind: 'record', ...parsed, micros };
  }
}

function keyOf(labels: Record<string, string>): AttemptKey | undefined {
  const mapIndex = labels[L.mapIndex] === '-1' ? -1 : decimal(labels[L.mapIndex]);
  const tryNumber = decimal(labels[L.tryNumber]);
  if (mapIndex === undefined || tryNumber === undefined) return undefined;
  try {
    return attemptKey({
      dagId: labels[L.dagId],
      runId: labels[L.runId],
      taskId: labels[L.taskId],
      mapIndex,
      tryNumber,
    });
  } catch {
    return undefined;
  }
}

function idOf(key: AttemptKey): string {
  return JSON.stringify([key.dagId, key.runId, key.taskId, key.mapIndex, key.tryNumber]);
}

function matches(key: AttemptKey, filter: AttemptFilter): boolean {
  return (
    (filter.dagId === undefined || filter.dagId === key.dagId) &&
    (filter.runId === undefined || filter.runId === key.runId) &&
    (filter.taskId === undefined || filter.taskId === key.taskId) &&
    (filter.mapIndex === undefined || filter.mapIndex === key.mapIndex) &&
    (filter.tryNumber === undefined || filter.tryNumber === key.tryNumber)
  );
}
