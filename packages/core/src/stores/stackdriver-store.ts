import { createHash, type Hash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { type AttemptKey, attemptKey } from '../attempt-key.js';
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
import { type LogRecord, RecordAssembler, RecordSplitter } from './log-records.js';
import type { OpenStoreOptions } from './open-store.js';

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

export interface StackdriverStoreOptions {
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
  /** Largest payload piece of one entry; default (and maximum) 40 KiB, see MAX_PIECE_BYTES. */
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
}

/** https://cloud.google.com/logging/quotas: a LogEntry is at most 256 KiB. */
const MAX_ENTRY_BYTES = 256 * 1024;
/** Room for everything in an entry but the payload: labels (ids ≤ 250 chars), names, resource. */
const ENTRY_OVERHEAD_BYTES = 16 * 1024;
/**
 * The payload piece that fits an entry in the worst case: JSON escapes a control character as
 * `\u00XX` (6 bytes for 1) and base64 grows 4/3, so 6x bounds both. 40 KiB.
 */
export const MAX_PIECE_BYTES =
  Math.floor((MAX_ENTRY_BYTES - ENTRY_OVERHEAD_BYTES) / 6 / 1024) * 1024;
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

/** Label names. The attempt's match Airflow's StackdriverTaskHandler (Airflow 3 remote IO). */
const L = {
  dagId: 'dag_id',
  runId: 'run_id',
  taskId: 'task_id',
  mapIndex: 'map_index',
  tryNumber: 'try_number',
  offset: 'offset',
  length: 'length',
  encoding: 'tasklog_encoding',
  end: 'tasklog_end',
  size: 'size',
  sha256: 'sha256',
  deleted: 'tasklog_deleted',
} as const;

// --- the SDK surface used (the generated client is `any` in the SDK's typings) ---------------

interface ApiTimestamp {
  seconds?: number | string | { toString(): string } | null;
  nanos?: number | null;
}

interface ApiEntry {
  logName?: string | null;
  timestamp?: ApiTimestamp | null;
  insertId?: string | null;
  labels?: Record<string, string> | null;
  textPayload?: string | null;
}

interface CallOptions {
  retry: null;
  timeout: number;
  autoPaginate?: boolean;
}

interface LoggingClient {
  initialize(): Promise<unknown>;
  getProjectId(): Promise<string>;
  writeLogEntries(request: object, options: CallOptions): Promise<unknown>;
  listLogEntries(
    request: object,
    options: CallOptions,
  ): Promise<[ApiEntry[], unknown, { nextPageToken?: string | null } | undefined]>;
  close(): Promise<void>;
}

interface Context {
  client: LoggingClient;
  /** `projects/P/logs/NAME` with NAME URL-encoded. */
  logName: string;
  project: string;
}

/** What a page of an attempt's entries says, entry by entry. */
type Parsed =
  | { kind: 'record'; record: LogRecord; micros: number }
  | { kind: 'end'; size: number; sha256: string; micros: number }
  | { kind: 'tombstone'; micros: number };

/**
 * The `stackdriver://LOG_NAME` archive in Google Cloud Logging, laid out like Airflow's
 * StackdriverTaskHandler: one entry per line in log LOG_NAME, resource `global`, labels
 * `dag_id`, `run_id`, `task_id`, `map_index`, `try_number` (strings). Airflow 2's
 * `execution_date` / Airflow 3's `logical_date` label is NOT set: tasklog does not know it, and
 * Airflow's own reader filters on it, so Airflow's UI does not find tasklog's entries.
 *
 * - Each entry: `textPayload` = the line without `\n` (base64 with label
 *   `tasklog_encoding=base64` when not UTF-8), labels `offset` and `length` (decimal strings),
 *   a deterministic `insertId` (sha256 of relative path, offset, length) and a timestamp that
 *   grows by at least 1 µs per entry along the log (max(clock, previous + 1 µs)), so timestamp
 *   order is offset order. A retried write resends the same entries with the same insertIds and
 *   timestamps, which the service de-duplicates.
 * - A finished log ends with an entry labelled `tasklog_end=true`, `size`, `sha256`.
 * - Cloud Logging cannot delete single entries (DeleteLog drops the whole log, every attempt),
 *   so delete() writes a tombstone entry (`tasklog_deleted=true`); readers ignore everything of
 *   the attempt up to the newest tombstone. The entries stay until the bucket's retention ends.
 * - Labels compare as strings, so reads cannot start at an offset: read(offset) pages from the
 *   attempt's first entry and skips, O(offset) (`seekableReads: false`).
 * - The generated `LoggingServiceV2Client` of `@google-cloud/logging` is used directly, not
 *   `Log.write` / `Log.getEntries`: those add a diagnostic entry on the first write of a
 *   process and silently restrict filters to the last 24 h; filters here are explicit
 *   (`timestamp >= 1970`) anyway.
 */
export class StackdriverStore implements LogStore {
  readonly url: string;
  readonly capabilities: StoreCapabilities = { liveAppend: true, seekableReads: false };
  readonly logName: string;
  readonly pathTemplate: PathTemplate;
  readonly maxPieceBytes: number;
  readonly maxBatchEntries: number;
  readonly maxBatchBytes: number;
  readonly #options: StackdriverStoreOptions;
  readonly #resource: { type: string; labels: Record<string, string> };
  readonly #pageSize: number;
  readonly #now: () => number;
  #context: Promise<Context> | undefined;

  constructor(options: StackdriverStoreOptions) {
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
    this.url = `stackdriver://${options.logName}`;
  }

  /** `stackdriver://LOG_NAME`; settings from the `[stackdriver]` config section. */
  static fromUrl(
    url: string,
    options: OpenStoreOptions = {},
    overrides: Partial<StackdriverStoreOptions> = {},
  ): StackdriverStore {
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
    return new StackdriverStore({
      logName,
      pathTemplate: options.pathTemplate,
      projectId: cfg.project_id,
      resourceType: cfg.resource_type,
      resourceLabels: cfg.resource_labels,
      apiEndpoint: cfg.api_endpoint,
      transport: cfg.transport,
      maxAttempts: cfg.max_attempts,
      ...overrides,
    });
  }

  /** Throws ConflictError if the log is complete; BackendUnavailableError, AbortedError. */
  async openWriter(key: AttemptKey, options: OpenWriterOptions = {}): Promise<LogWriter> {
    const { signal } = options;
    const rel = this.pathTemplate.render(key);
    try {
      const ctx = await this.#ctx(signal);
      const tombstone = await this.#latestTombstone(ctx, key, signal);
      // Resuming: the contiguous records from offset 0 are what an earlier writer committed.
      // Their bytes are hashed on the way, so finish() need not read them back.
      const assembler = new RecordAssembler(0);
      const hash = createHash('sha256');
      let lastMicros = tombstone ?? 0;
      let found = false;
      for await (const item of this.#entries(ctx, key, tombstone, signal)) {
        if (item.kind === 'end') {
          throw new ConflictError(`log ${this.#where(key)} is already complete`);
        }
        if (item.kind !== 'record') continue;
        found = true;
        lastMicros = Math.max(lastMicros, item.micros);
        for (const chunk of assembler.add(item.record)) hash.update(chunk.bytes);
      }
      if (!found) {
        // An empty record at offset 0 makes a freshly opened attempt exist for read(), stat()
        // and list() before its first flush (readers skip it: it covers no bytes).
        lastMicros = Math.max(this.nowMicros(), lastMicros + 1);
        const marker = this.entry(key, lastMicros, insertId(rel, 'open', 0, 0), '', {
          [L.offset]: '0',
          [L.length]: '0',
        });
        await this.write(ctx, [marker], signal);
      }
      return new StackdriverLogWriter(this, ctx, key, rel, assembler.next, hash, lastMicros);
    } catch (err) {
      throw stackdriverError(err, this.#where(key), 'open a writer for');
    }
  }

  /**
   * Streams the log from `offset`, paging from the attempt's first entry (O(offset), see the
   * class comment). Throws NotFoundError, OffsetOutOfRangeError, IntegrityError (a finished log
   * with a hole), BackendUnavailableError, AbortedError.
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
      if (!found) throw new NotFoundError(`no log stored for ${where}`);
      if (complete && assembler.next !== complete.size) {
        throw new IntegrityError(
          `log ${where} is complete with ${complete.size} bytes but its records cover only ${assembler.next} contiguous bytes`,
        );
      }
      const size = assembler.next;
      if (offset > size) throw new OffsetOutOfRangeError(offset, size);
    } catch (err) {
      throw stackdriverError(err, where, 'read');
    }
  }

  /**
   * Complete → size and sha256 of the end entry. Running → the end of the entry with the newest
   * timestamp, which is the highest offset because timestamps grow along the log (one query,
   * no scan; a running log with a hole would report past it). Throws BackendUnavailableError.
   */
  async stat(
    key: AttemptKey,
    options: { signal?: AbortSignal } = {},
  ): Promise<LogStat | undefined> {
    const { signal } = options;
    try {
      const ctx = await this.#ctx(signal);
      const item = await this.#newest(ctx, key, signal);
      if (!item || item.kind === 'tombstone') return undefined;
      const modifiedAt = new Date(Math.floor(item.micros / 1000));
      if (item.kind === 'end')
        return { size: item.size, complete: true, sha256: item.sha256, modifiedAt };
      return { size: item.record.offset + item.record.length, complete: false, modifiedAt };
    } catch (err) {
      throw stackdriverError(err, this.#where(key), 'stat');
    }
  }

  /**
   * Every attempt with entries matching `filter`: the first record (`offset="0"`, also the end
   * entry of an empty log) and the tombstones of matching attempts, paged. An attempt is listed
   * when its newest first record is newer than its newest tombstone, so keys are collected until
   * the last page (memory: one small entry per attempt). Throws BackendUnavailableError.
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
          const id = JSON.stringify([
            key.dagId,
            key.runId,
            key.taskId,
            key.mapIndex,
            key.tryNumber,
          ]);
          const state = attempts.get(id) ?? { key, started: -1, deleted: -1 };
          if (parsed.kind === 'tombstone') state.deleted = Math.max(state.deleted, parsed.micros);
          else if (
            (parsed.kind === 'record' && parsed.record.offset === 0) ||
            parsed.kind === 'end'
          ) {
            state.started = Math.max(state.started, parsed.micros);
          }
          attempts.set(id, state);
        }
        token = page.next;
      } while (token);
    } catch (err) {
      throw stackdriverError(err, `log ${this.logName}`, 'list');
    }
    for (const { key, started, deleted } of attempts.values()) {
      if (started > deleted) yield key;
    }
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
      if (!newest || newest.kind === 'tombstone') return;
      const micros = Math.max(this.nowMicros(), newest.micros + 1);
      const entry = this.entry(key, micros, randomBytes(12).toString('hex'), '', {
        [L.deleted]: 'true',
      });
      await this.write(ctx, [entry], signal);
    } catch (err) {
      throw stackdriverError(err, this.#where(key), 'delete');
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
      throw stackdriverError(err, `log ${this.logName}`, 'reach');
    }
  }

  async close(): Promise<void> {
    const ctx = this.#context;
    this.#context = undefined;
    if (!ctx) return;
    const resolved = await ctx.catch(() => undefined);
    await resolved?.client.close().catch(() => undefined);
  }

  // --- internals shared with the writer ------------------------------------------------------

  /** The clock in µs. */
  nowMicros(): number {
    return Math.floor(this.#now() * 1000);
  }

  /** A LogEntry in the generated client's (protobuf object) form. */
  entry(
    key: AttemptKey,
    micros: number,
    insertId: string,
    textPayload: string,
    extra: Record<string, string>,
  ): ApiEntryOut {
    return {
      timestamp: { seconds: Math.floor(micros / 1e6), nanos: (micros % 1e6) * 1000 },
      insertId,
      labels: {
        [L.dagId]: key.dagId,
        [L.runId]: key.runId,
        [L.taskId]: key.taskId,
        [L.mapIndex]: String(key.mapIndex),
        [L.tryNumber]: String(key.tryNumber),
        ...extra,
      },
      textPayload,
    };
  }

  /** One WriteLogEntries call, retried with backoff; the same entries on every try. */
  async write(
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
    this.#context ??= this.#connect().catch((err: unknown) => {
      // A failed start leaves the SDK client unusable; the next call starts over.
      this.#context = undefined;
      throw err;
    });
    return this.#context;
  }

  async #connect(): Promise<Context> {
    const sdk = (await import('@google-cloud/logging')) as unknown as {
      v2: { LoggingServiceV2Client: new (options: object) => LoggingClient };
    };
    const options: Record<string, unknown> = {};
    if (this.#options.projectId) options.projectId = this.#options.projectId;
    const transport = this.#options.transport ?? 'grpc';
    if (transport === 'rest') options.fallback = 'rest';
    const endpoint = this.#options.apiEndpoint;
    if (endpoint) {
      const m = /^(?:(https?):\/\/)?([^/:]+|\[[^\]]+\])(?::(\d+))?\/?$/i.exec(endpoint);
      if (!m) {
        throw new InvalidInputError(
          `stackdriver api_endpoint must be host[:port] or http(s)://host[:port], got ${endpoint}`,
        );
      }
      const plain = m[1]?.toLowerCase() === 'http';
      options.apiEndpoint = m[2];
      options.port = m[3] ? Number(m[3]) : plain ? 80 : 443;
      if (plain) {
        // An emulator: no TLS, no credentials. The SDK's own dependencies provide the pieces,
        // so they are the instances the SDK checks against.
        const sdkRequire = createRequire(
          createRequire(import.meta.url).resolve('@google-cloud/logging'),
        );
        if (transport === 'rest') {
          const auth = sdkRequire('google-auth-library') as { PassThroughClient: new () => object };
          options.protocol = 'http';
          options.authClient = new auth.PassThroughClient();
        } else {
          const gax = sdkRequire('google-gax') as {
            grpc: { credentials: { createInsecure(): unknown } };
          };
          options.sslCreds = gax.grpc.credentials.createInsecure();
        }
      }
    }
    const client = new sdk.v2.LoggingServiceV2Client(options);
    // The generated methods start the client with `initialize().catch((e) => { throw e })`, an
    // unhandled rejection that kills the process when credentials are missing. Starting it here
    // first turns that into an error of this call, and no method runs on a client that failed.
    await client.initialize();
    const project = this.#options.projectId ?? (await client.getProjectId());
    return {
      client,
      project,
      logName: `projects/${project}/logs/${encodeURIComponent(this.logName)}`,
    };
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
    const offset = decimal(labels[L.offset]);
    const length = decimal(labels[L.length]);
    if (offset === undefined || length === undefined) return undefined;
    const payload = entry.textPayload ?? '';
    const record: LogRecord =
      labels[L.encoding] === 'base64'
        ? { offset, length, base64: payload }
        : { offset, length, text: payload };
    return { kind: 'record', record, micros };
  }
}

/** A LogEntry as the store sends it. */
interface ApiEntryOut {
  timestamp: { seconds: number; nanos: number };
  insertId: string;
  labels: Record<string, string>;
  textPayload: string;
}

/**
 * Queues records into WriteLogEntries batches (≤ maxBatchEntries entries, ≤ maxBatchBytes
 * estimated bytes); a full batch is sent at once and append() waits for it, so at most one
 * batch is held. No timer: the shipper's flush() decides when a partial batch goes out.
 */
class StackdriverLogWriter implements LogWriter {
  #committed: number;
  #splitter: RecordSplitter;
  #batch: { entries: ApiEntryOut[]; bytes: number; end: number } = {
    entries: [],
    bytes: 0,
    end: 0,
  };
  #hash: Hash;
  #lastMicros: number;
  #state: 'open' | 'finished' | 'aborted' = 'open';
  /** A batch that could not be stored even after retries; the writer is then unusable. */
  #failed: TasklogError | undefined;
  #busy: Promise<unknown> = Promise.resolve();

  constructor(
    readonly store: StackdriverStore,
    readonly ctx: Context,
    readonly key: AttemptKey,
    readonly rel: string,
    committed: number,
    hash: Hash,
    lastMicros: number,
  ) {
    this.#committed = committed;
    this.#splitter = new RecordSplitter(committed, store.maxPieceBytes);
    this.#hash = hash;
    this.#lastMicros = lastMicros;
  }

  get committedOffset(): number {
    return this.#committed;
  }

  get offset(): number {
    return this.#splitter.offset + this.#splitter.pending;
  }

  append(bytes: Uint8Array): Promise<void> {
    return this.#serial(async () => {
      this.#checkOpen();
      this.#hash.update(bytes);
      await this.#queue(this.#splitter.push(bytes));
    });
  }

  flush(): Promise<number> {
    return this.#serial(async () => {
      if (this.#failed) throw this.#failed;
      if (this.#state === 'open') {
        await this.#queue(this.#splitter.flush());
        await this.#send();
      }
      return this.#committed;
    });
  }

  finish(expected: { size: number; sha256: string }): Promise<void> {
    return this.#serial(async () => {
      this.#checkOpen();
      await this.#queue(this.#splitter.end());
      await this.#send();
      const size = this.#committed;
      const sha256 = this.#hash.copy().digest('hex');
      if (size !== expected.size || sha256 !== expected.sha256) {
        throw new IntegrityError(
          `log ${this.rel} holds ${size} bytes with sha256 ${sha256}, expected ${expected.size} bytes with sha256 ${expected.sha256}`,
        );
      }
      const end = this.store.entry(this.key, this.#tick(), insertId(this.rel, 'end', size, 0), '', {
        offset: String(size),
        length: '0',
        tasklog_end: 'true',
        size: String(size),
        sha256,
      });
      try {
        await this.store.write(this.ctx, [end], undefined);
      } catch (err) {
        throw stackdriverError(err, this.rel, 'finish');
      }
      this.#state = 'finished';
    });
  }

  abort(): Promise<void> {
    this.#state = this.#state === 'finished' ? 'finished' : 'aborted';
    this.#batch = { entries: [], bytes: 0, end: this.#committed };
    return Promise.resolve();
  }

  #checkOpen(): void {
    if (this.#failed) throw this.#failed;
    if (this.#state !== 'open') {
      throw new ConflictError(`writer of ${this.rel} is already ${this.#state}`);
    }
  }

  /** One operation at a time, in call order. */
  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#busy.then(op, op);
    this.#busy = run.catch(() => undefined);
    return run;
  }

  #tick(): number {
    this.#lastMicros = Math.max(this.store.nowMicros(), this.#lastMicros + 1);
    return this.#lastMicros;
  }

  async #queue(records: LogRecord[]): Promise<void> {
    for (const record of records) {
      const extra: Record<string, string> = {
        offset: String(record.offset),
        length: String(record.length),
      };
      if (record.base64 !== undefined) extra.tasklog_encoding = 'base64';
      const entry = this.store.entry(
        this.key,
        this.#tick(),
        insertId(this.rel, 'record', record.offset, record.length),
        record.base64 ?? record.text ?? '',
        extra,
      );
      // The JSON size bounds the protobuf size the service counts.
      const bytes = Buffer.byteLength(JSON.stringify(entry)) + 64;
      if (
        this.#batch.entries.length >= this.store.maxBatchEntries ||
        this.#batch.bytes + bytes > this.store.maxBatchBytes
      ) {
        await this.#send();
      }
      this.#batch.entries.push(entry);
      this.#batch.bytes += bytes;
      this.#batch.end = record.offset + record.length;
    }
  }

  /**
   * Sends the batch. When it fails even after retries, the records already cut from the
   * appended bytes cannot be put back, so the writer fails for good: a new writer resumes at
   * committedOffset (and resends, with the same insertIds, whatever this one did store).
   */
  async #send(): Promise<void> {
    const batch = this.#batch;
    if (batch.entries.length === 0) return;
    try {
      await this.store.write(this.ctx, batch.entries, undefined);
    } catch (err) {
      const failure = stackdriverError(err, this.rel, 'write');
      if (!(failure instanceof AbortedError)) {
        this.#failed = new BackendUnavailableError(
          `writer of ${this.rel} failed at offset ${this.#committed}; open a new writer to resume (${failure.message})`,
          { cause: failure },
        );
      }
      throw failure;
    }
    this.#committed = batch.end;
    this.#batch = { entries: [], bytes: 0, end: batch.end };
  }
}

// --- helpers -------------------------------------------------------------------------------

/** Deterministic, so a retried or resent record de-duplicates in the service. */
function insertId(rel: string, kind: string, offset: number, length: number): string {
  return createHash('sha256')
    .update(`${rel}\n${kind}\n${offset}\n${length}`)
    .digest('hex')
    .slice(0, 32);
}

/** A string literal of the Logging query language. */
function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

function decimal(text: string | undefined): number | undefined {
  if (text === undefined || !/^(0|[1-9][0-9]*)$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

function timestampMicros(t: ApiTimestamp | null | undefined): number {
  const seconds = Number(String(t?.seconds ?? 0));
  return seconds * 1e6 + Math.floor((t?.nanos ?? 0) / 1000);
}

/** RFC 3339 with microseconds. */
function formatMicros(micros: number): string {
  const iso = new Date(Math.floor(micros / 1000)).toISOString();
  return `${iso.slice(0, 19)}.${String(micros % 1e6).padStart(6, '0')}Z`;
}

function keyOf(labels: Record<string, string>): AttemptKey | undefined {
  const mapIndex = decimalSigned(labels[L.mapIndex]);
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

function decimalSigned(text: string | undefined): number | undefined {
  if (text === '-1') return -1;
  return decimal(text);
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

/**
 * The generated client takes no AbortSignal (its promise has no cancel once wrapped), so an
 * abort stops waiting at once; the call itself ends by its deadline.
 */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  promise.catch(() => undefined);
  if (signal.aborted) return Promise.reject(new AbortedError('aborted', { cause: signal.reason }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError('aborted', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** gRPC status codes. */
const G = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const RETRYABLE_CODES = new Set<number>([
  G.DEADLINE_EXCEEDED,
  G.RESOURCE_EXHAUSTED,
  G.ABORTED,
  G.INTERNAL,
  G.UNAVAILABLE,
]);
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
const HTTP_TO_GRPC: Record<number, number> = {
  400: G.INVALID_ARGUMENT,
  401: G.UNAUTHENTICATED,
  403: G.PERMISSION_DENIED,
  404: G.NOT_FOUND,
  409: G.ABORTED,
  429: G.RESOURCE_EXHAUSTED,
  500: G.INTERNAL,
  502: G.UNAVAILABLE,
  503: G.UNAVAILABLE,
  504: G.DEADLINE_EXCEEDED,
};

/** The gRPC code of an SDK error (REST errors carry HTTP statuses or socket codes). */
function grpcCode(err: unknown): number | string | undefined {
  const e = (err ?? {}) as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.code === 'string') return e.code;
  const status = typeof e.status === 'number' ? e.status : e.response?.status;
  if (typeof status === 'number')
    return HTTP_TO_GRPC[status] ?? (status >= 500 ? G.UNAVAILABLE : undefined);
  return undefined;
}

function isRetryable(err: unknown): boolean {
  if (err instanceof TasklogError) return false;
  const code = grpcCode(err);
  if (typeof code === 'number') return RETRYABLE_CODES.has(code);
  if (typeof code === 'string') return NETWORK_CODES.has(code);
  return false;
}

/** Every SDK failure becomes one of tasklog's errors here, with the SDK's error as `cause`. */
function stackdriverError(err: unknown, where: string, action: string): TasklogError {
  if (err instanceof TasklogError) return err;
  const cause = { cause: err };
  const code = grpcCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === G.CANCELLED || (err as { name?: string })?.name === 'AbortError') {
    return new AbortedError(`${action} ${where} was aborted`, cause);
  }
  if (
    /default credentials|could not load the default credentials|no authentication/i.test(message)
  ) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: no Google credentials (Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud auth application-default login, or the metadata server)`,
      cause,
    );
  }
  if (/project id/i.test(message) && code === undefined) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: no Google Cloud project; set stackdriver.project_id or GOOGLE_CLOUD_PROJECT`,
      cause,
    );
  }
  if (code === G.PERMISSION_DENIED || code === G.UNAUTHENTICATED) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: access denied (${message}); the credentials need roles/logging.logWriter and roles/logging.viewer`,
      cause,
    );
  }
  if (code === G.INVALID_ARGUMENT || code === G.FAILED_PRECONDITION || code === G.NOT_FOUND) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: Cloud Logging rejected the request (${message})`,
      cause,
    );
  }
  if (typeof code === 'number' && RETRYABLE_CODES.has(code)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: Cloud Logging is unavailable or throttling even after retries (${message})`,
      cause,
    );
  }
  return new BackendUnavailableError(`cannot ${action} ${where}: ${message}`, cause);
}
