import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, estypes } from '@elastic/elasticsearch';
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
import type { AttemptFilter } from '../path-template.js';
import { backoffDelay, withRetry } from '../retry.js';
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
import { throwIfAborted, validateFilter } from './store-checks.js';

/** Airflow's default `[elasticsearch] log_id_template`. */
export const AIRFLOW_LOG_ID_TEMPLATE = '{dag_id}-{task_id}-{run_id}-{map_index}-{try_number}';

/** The `[elasticsearch]` config section, as the config loader hands it over (snake_case). */
export interface ElasticsearchSettings {
  log_id_template: string;
  end_of_log_mark: string;
  message_field: 'message' | 'event';
  host_field: string;
  username: string;
  password: string;
  api_key: string;
  ca_file: string;
  request_timeout_seconds: number;
  max_retries: number;
  bulk_bytes: number;
  bulk_count: number;
  distribution: 'elasticsearch' | 'opensearch';
}

export interface ElasticsearchStoreOptions {
  /** The cluster, `http(s)://host:port[/path]`, without the index. */
  node: string;
  /** The index (or alias) every document goes to; created with tasklog's mapping if missing. */
  index: string;
  /**
   * Airflow's `log_id_template`: `{dag_id}`, `{task_id}`, `{run_id}`, `{map_index}`,
   * `{try_number}`, `{{`/`}}` for literal braces (Python's str.format, as Airflow renders it).
   * Airflow's date placeholders (`{logical_date}`, `{data_interval_start}`, ...) are not
   * known to tasklog and are refused. Default {@link AIRFLOW_LOG_ID_TEMPLATE}.
   */
  logIdTemplate?: string;
  /** `message` of the end-of-log document, Airflow's `end_of_log_mark`. Default `end_of_log`. */
  endOfLogMark?: string;
  /** Field holding a line's text: `message` (Airflow 2) or `event` (Airflow 3). Default `message`. */
  messageField?: 'message' | 'event';
  /** Airflow's `host_field`: the field naming the machine that wrote the line. Default `host`. */
  hostField?: string;
  /** Value of `hostField`. Default `os.hostname()`. */
  hostName?: string;
  /** Basic auth. Never part of `url`. */
  username?: string;
  password?: string;
  /** `Authorization: ApiKey <apiKey>` (the base64 `id:api_key` Elasticsearch hands out). */
  apiKey?: string;
  /** PEM file of the CA that signed the cluster's certificate (self-signed clusters). */
  caFile?: string;
  /** Timeout of one HTTP request in ms. Default 30,000. */
  requestTimeoutMs?: number;
  /**
   * Retries of a failed request (429, 5xx, connection errors, timeouts) and of bulk items
   * rejected with 429, with exponential backoff and full jitter. Default 7.
   */
  maxRetries?: number;
  /** Backoff base and cap in ms. Default 100 and 20,000. */
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  /** Largest `_bulk` body in bytes (Elastic advises starting around 5 MB). Default 5 MiB. */
  bulkBytes?: number;
  /** Most documents in one `_bulk` request. Default 5,000. */
  bulkCount?: number;
  /**
   * Longest piece of a line in one document; longer lines are split (Airflow then shows the
   * pieces as separate lines). JSON escaping can make a document 6x this. Default 256 KiB.
   */
  maxPieceBytes?: number;
  /** Hits per search page (Airflow reads 1000). Default 1000. */
  pageSize?: number;
  /**
   * `opensearch`: no `X-Elastic-Product` check and plain `application/json` requests, which
   * OpenSearch needs (the v9 client otherwise refuses it with ProductNotSupportedError and
   * sends `compatible-with=9` media types OpenSearch rejects). Default `elasticsearch`.
   */
  distribution?: 'elasticsearch' | 'opensearch';
}

const MIB = 1024 * 1024;
const DEFAULT_BULK_BYTES = 5 * MIB;
const DEFAULT_BULK_COUNT = 5000;
const DEFAULT_PIECE_BYTES = 256 * 1024;
const DEFAULT_PAGE_SIZE = 1000;
const DEFAULT_MAX_RETRIES = 7;
const DEFAULT_TIMEOUT_MS = 30_000;
/** ES's `index.max_result_window`: one page can never be larger. */
const MAX_PAGE_SIZE = 10_000;
const COMPOSITE_PAGE = 1000;
/** HTTP statuses worth another try: timeout, throttling, server trouble. */
const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const TRANSIENT_ERRORS = new Set([
  'ConnectionError',
  'TimeoutError',
  'NoLivingConnectionsError',
  'DeserializationError',
]);
const ID_FIELDS = ['dag_id', 'run_id', 'task_id', 'map_index', 'try_number'] as const;
type IdField = (typeof ID_FIELDS)[number];

/**
 * The `elasticsearch+https://host:9200/INDEX` archive, one document per line, readable by
 * Airflow's Elasticsearch task handler (providers `ElasticsearchTaskHandler`).
 *
 * A document: `log_id` (Airflow's template), `offset`, `length`, the text in `message` (or
 * `event`; bytes that are not UTF-8 as base64 with `encoding: "base64"`), `host`,
 * `@timestamp`, and Airflow's json fields `dag_id`, `task_id`, `run_id`, `map_index`,
 * `try_number`.
 *
 * - `offset` is the byte offset of the line's first byte PLUS ONE. Airflow pages with
 *   `range offset > N` starting at N = 0 (its own writer counts from 1), so a 0 would hide the
 *   first line from Airflow. `length` is the number of log bytes the document covers.
 * - The end-of-log document has `message` = the end mark (Airflow stops tailing on it),
 *   `offset` = size + 1, `length` 0, `end: true`, `sha256`.
 * - An opened attempt gets a start marker (`offset` 0, `length` 0, `start: true`) so it
 *   exists before its first line; Airflow's `offset > 0` never returns it.
 * - `_id` = sha1(log_id, offset): a retried bulk overwrites instead of duplicating.
 * - Near real time: a document is searchable after the index's next refresh (`refresh_interval`,
 *   1 s by default). flush() and finish() send their last request with `refresh=wait_for`, so
 *   what they report committed is readable when they resolve (up to 1 s per flush); lines a
 *   running writer sent on its own (a full bulk) may stay invisible for up to that long.
 * - Documents Airflow wrote itself (no `length`; `offset` is Airflow's counter or a nanosecond
 *   timestamp) read as their messages in `offset` order, each plus `\n`; tasklog computes the
 *   byte offsets, so reading such a log from offset N scans it from its start.
 *
 * The SDK is loaded on first use.
 */
export class ElasticsearchStore implements LogStore {
  readonly url: string;
  readonly capabilities: StoreCapabilities = { liveAppend: true, seekableReads: true };
  readonly index: string;
  readonly endOfLogMark: string;
  readonly messageField: 'message' | 'event';
  readonly hostField: string;
  readonly hostName: string;
  readonly bulkBytes: number;
  readonly bulkCount: number;
  readonly maxPieceBytes: number;
  readonly pageSize: number;
  readonly #options: ElasticsearchStoreOptions;
  readonly #logId: (key: AttemptKey) => string;
  readonly #retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  #context: Promise<Context> | undefined;
  #fields: Fields | undefined;

  constructor(options: ElasticsearchStoreOptions) {
    let node: URL;
    try {
      node = new URL(options.node);
    } catch (cause) {
      throw new InvalidInputError(`Elasticsearch node must be a URL, got ${options.node}`, {
        cause,
      });
    }
    if (node.protocol !== 'http:' && node.protocol !== 'https:') {
      throw new InvalidInputError(`Elasticsearch node must be http(s)://, got ${node.protocol}`);
    }
    validateIndexName(options.index);
    const int = (name: string, value: number | undefined, fallback: number, min: number) => {
      const v = value ?? fallback;
      if (!Number.isSafeInteger(v) || v < min) {
        throw new InvalidInputError(`Elasticsearch ${name} must be an integer >= ${min}, got ${v}`);
      }
      return v;
    };
    this.bulkBytes = int('bulkBytes', options.bulkBytes, DEFAULT_BULK_BYTES, 1024);
    this.bulkCount = int('bulkCount', options.bulkCount, DEFAULT_BULK_COUNT, 1);
    this.maxPieceBytes = int('maxPieceBytes', options.maxPieceBytes, DEFAULT_PIECE_BYTES, 4);
    this.pageSize = int('pageSize', options.pageSize, DEFAULT_PAGE_SIZE, 1);
    if (this.pageSize > MAX_PAGE_SIZE) {
      throw new InvalidInputError(`Elasticsearch pageSize must be <= ${MAX_PAGE_SIZE}`);
    }
    this.#retry = {
      maxAttempts: int('maxRetries', options.maxRetries, DEFAULT_MAX_RETRIES, 0) + 1,
      baseDelayMs: int('retryBaseDelayMs', options.retryBaseDelayMs, 100, 0),
      maxDelayMs: int('retryMaxDelayMs', options.retryMaxDelayMs, 20_000, 0),
    };
    int('requestTimeoutMs', options.requestTimeoutMs, DEFAULT_TIMEOUT_MS, 1);
    if ((options.username === undefined) !== (options.password === undefined)) {
      throw new InvalidInputError('Elasticsearch username and password must be given together');
    }
    if (options.apiKey !== undefined && options.username !== undefined) {
      throw new InvalidInputError('Elasticsearch takes either api_key or username/password');
    }
    this.endOfLogMark = (options.endOfLogMark ?? 'end_of_log').trim();
    if (this.endOfLogMark === '') throw new InvalidInputError('end_of_log_mark must not be empty');
    this.messageField = options.messageField ?? 'message';
    if (this.messageField !== 'message' && this.messageField !== 'event') {
      throw new InvalidInputError(`message_field must be "message" or "event"`);
    }
    this.hostField = options.hostField ?? 'host';
    if (!/^[A-Za-z0-9_@][A-Za-z0-9_.@-]*$/.test(this.hostField) || RESERVED.has(this.hostField)) {
      throw new InvalidInputError(
        `host_field must be a plain field name not used by tasklog, got ${this.hostField}`,
      );
    }
    this.hostName = options.hostName ?? hostname();
    this.#logId = compileLogIdTemplate(options.logIdTemplate ?? AIRFLOW_LOG_ID_TEMPLATE);
    this.index = options.index;
    this.#options = options;
    node.username = '';
    node.password = '';
    const scheme = node.protocol === 'https:' ? 'elasticsearch+https' : 'elasticsearch+http';
    this.url = `${scheme}://${node.host}${node.pathname.replace(/\/+$/, '')}/${this.index}`;
  }

  /**
   * `elasticsearch+https://[user:password@]host[:port][/path]/INDEX` (or `elasticsearch+http`).
   * Credentials in the URL are used for basic auth and left out of `url`. Settings come from the
   * `[elasticsearch]` section (`options.elasticsearch`), then `overrides`.
   */
  static fromUrl(
    url: string,
    options: OpenStoreOptions & { elasticsearch?: Partial<ElasticsearchSettings> } = {},
    overrides: Partial<ElasticsearchStoreOptions> = {},
  ): ElasticsearchStore {
    const m = /^elasticsearch\+(https?):\/\/([^/?#]+)((?:\/[^/?#]+)*)\/([^/?#]+)\/?$/i.exec(url);
    if (!m) {
      throw new InvalidInputError(
        `Elasticsearch store URL must look like elasticsearch+https://host:9200/INDEX, got ${redactUrl(url)}`,
      );
    }
    const [, scheme, authority, path, index] = m;
    let node: URL;
    try {
      node = new URL(`${scheme!.toLowerCase()}://${authority}${path ?? ''}`);
    } catch (cause) {
      throw new InvalidInputError(`Elasticsearch store URL has a bad host: ${redactUrl(url)}`, {
        cause,
      });
    }
    const user = node.username ? decodeURIComponent(node.username) : undefined;
    const pass = node.password ? decodeURIComponent(node.password) : undefined;
    node.username = '';
    node.password = '';
    const es = options.elasticsearch ?? {};
    return new ElasticsearchStore({
      node: node.toString().replace(/\/$/, ''),
      index: decodeURIComponent(index!),
      logIdTemplate: es.log_id_template,
      endOfLogMark: es.end_of_log_mark,
      messageField: es.message_field,
      hostField: es.host_field,
      username: es.username ?? user,
      password: es.password ?? pass,
      apiKey: es.api_key,
      caFile: es.ca_file,
      requestTimeoutMs:
        es.request_timeout_seconds === undefined
          ? undefined
          : Math.round(es.request_timeout_seconds * 1000),
      maxRetries: es.max_retries,
      bulkBytes: es.bulk_bytes,
      bulkCount: es.bulk_count,
      distribution: es.distribution,
      ...overrides,
    });
  }

  /** Airflow's log_id of an attempt. */
  logId(key: AttemptKey): string {
    return this.#logId(attemptKey(key));
  }

  /**
   * Creates the index if needed, reads where the attempt stands, removes documents a crashed
   * writer left after a gap, and marks the attempt as started. Throws ConflictError when the log
   * is complete (or was written by Airflow itself), BackendUnavailableError, InvalidInputError
   * (the index maps tasklog's fields incompatibly), AbortedError.
   */
  async openWriter(key: AttemptKey, options: OpenWriterOptions = {}): Promise<LogWriter> {
    const { signal } = options;
    const k = attemptKey(key);
    const logId = this.#logId(k);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      const fields = await this.#ensureIndex(ctx, signal);
      // Lines a crashed writer had sent without waiting for a refresh must count too.
      await this.#call(() => ctx.client.indices.refresh({ index: this.index }, { signal }), signal);
      const assembler = new RecordAssembler(0);
      let committed = 0;
      let lastTimestamp = 0;
      let started = false;
      let stale = false;
      for await (const item of this.#items(ctx, fields, logId, 0, signal)) {
        if (item.kind === 'start') {
          started = true;
          continue;
        }
        if (item.kind === 'end') {
          throw new ConflictError(`log ${logId} in index ${this.index} is already complete`);
        }
        if (item.foreign) {
          throw new ConflictError(
            `log ${logId} in index ${this.index} was written by Airflow itself; tasklog does not append to it`,
          );
        }
        if (item.record.offset > committed) {
          stale = true; // a gap: everything from here on is left over from a crashed writer
          break;
        }
        assembler.add(item.record);
        committed = assembler.next;
        lastTimestamp = Math.max(lastTimestamp, item.timestamp ?? 0);
      }
      if (stale) await this.#deleteDocs(ctx, fields, logId, committed, signal);
      const writer = new ElasticsearchLogWriter(this, ctx, k, logId, committed, lastTimestamp);
      if (!started) await writer.writeStartMarker();
      return writer;
    } catch (err) {
      throw esError(err, this.index, logId, 'open a writer for');
    }
  }

  /**
   * Streams the log from `offset`: one query for the document holding `offset`, then pages of
   * `search_after` on `offset` (never deep from/size paging). Throws NotFoundError,
   * OffsetOutOfRangeError, IntegrityError (a finished log with missing lines),
   * InvalidInputError, BackendUnavailableError, AbortedError.
   */
  async *read(key: AttemptKey, options: ReadOptions = {}): AsyncGenerator<LogChunk> {
    const { signal } = options;
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new InvalidInputError(`read offset must be an integer >= 0, got ${offset}`);
    }
    const end = options.end;
    if (end !== undefined && (!Number.isSafeInteger(end) || end < offset)) {
      throw new InvalidInputError(`read end must be an integer >= offset (${offset}), got ${end}`);
    }
    const logId = this.logId(key);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      const fields = await this.#existingFields(ctx, signal);
      if (!fields) throw new NotFoundError(`no log ${logId} in index ${this.index}`);
      if (end === offset) {
        // Nothing to return, but an offset past the end is still an error.
        const stat = await this.stat(key, { signal });
        if (!stat) throw new NotFoundError(`no log ${logId} in index ${this.index}`);
        if (offset > stat.size) throw new OffsetOutOfRangeError(offset, stat.size);
        return;
      }
      const stop = end ?? Number.POSITIVE_INFINITY;
      let from = 0;
      let exists = false;
      if (offset > 0 && fields.exactLogId(logId)) {
        const head = await this.#lastDoc(ctx, fields, logId, offset + 1, signal);
        if (head) {
          exists = true;
          const doc = classify(head._source, this.messageField);
          if (doc.kind === 'record') from = doc.record.offset;
          else if (doc.kind === 'end') from = doc.size;
        }
      }
      const assembler = new RecordAssembler(offset);
      let runEnd = from;
      let complete: { size: number } | undefined;
      for await (const item of this.#items(ctx, fields, logId, from, signal)) {
        exists = true;
        if (item.kind === 'start') continue;
        if (item.kind === 'end') {
          complete = item;
          break;
        }
        const record = item.record;
        if (record.offset > runEnd) {
          // A running log ends at its first gap; a finished one must not have any.
          if (await this.#isComplete(ctx, fields, logId, signal)) {
            throw new IntegrityError(
              `log ${logId} in index ${this.index} is complete but bytes ${runEnd}-${record.offset} are missing`,
            );
          }
          break;
        }
        runEnd = Math.max(runEnd, record.offset + record.length);
        for (const chunk of assembler.add(record)) {
          const take = Math.min(chunk.bytes.length, stop - chunk.offset);
          if (take > 0)
            yield take === chunk.bytes.length
              ? chunk
              : { offset: chunk.offset, bytes: chunk.bytes.subarray(0, take) };
          if (chunk.offset + take >= stop) return;
        }
      }
      if (!exists) throw new NotFoundError(`no log ${logId} in index ${this.index}`);
      const size = complete?.size ?? runEnd;
      if (offset > size) throw new OffsetOutOfRangeError(offset, size);
      if (complete && assembler.next < Math.min(stop, size)) {
        throw new IntegrityError(
          `log ${logId} in index ${this.index} ends at byte ${assembler.next} but its end record says ${size}`,
        );
      }
    } catch (err) {
      throw esError(err, this.index, logId, 'read');
    }
  }

  /**
   * Finished → size and sha256 of the end record. Running → the end of the document with the
   * highest offset (one query; a gap a crashed writer left before it is not noticed here, a
   * read stops at it). A log Airflow wrote itself is read through to add up its bytes.
   * Undefined when the index holds nothing for the attempt. Throws BackendUnavailableError.
   */
  async stat(
    key: AttemptKey,
    options: { signal?: AbortSignal } = {},
  ): Promise<LogStat | undefined> {
    const { signal } = options;
    const logId = this.logId(key);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      const fields = await this.#existingFields(ctx, signal);
      if (!fields) return undefined;
      if (fields.exactLogId(logId)) {
        const last = await this.#lastDoc(ctx, fields, logId, undefined, signal);
        if (!last) return undefined;
        const doc = classify(last._source, this.messageField);
        const modifiedAt = timestampOf(last._source);
        const when = modifiedAt ? { modifiedAt: new Date(modifiedAt) } : {};
        if (doc.kind === 'end') {
          return {
            size: doc.size,
            complete: true,
            ...(doc.sha256 ? { sha256: doc.sha256 } : {}),
            ...when,
          };
        }
        if (doc.kind === 'start') return { size: 0, complete: false, ...when };
        if (doc.kind === 'record') {
          return { size: doc.record.offset + doc.record.length, complete: false, ...when };
        }
      }
      // Airflow's own documents (or a log_id that cannot be matched exactly): walk the log.
      let size = 0;
      let exists = false;
      let modified = 0;
      for await (const item of this.#items(ctx, fields, logId, 0, signal)) {
        exists = true;
        modified = Math.max(modified, item.timestamp ?? 0);
        if (item.kind === 'end') {
          return {
            size: item.size,
            complete: true,
            ...(item.sha256 ? { sha256: item.sha256 } : {}),
            ...(modified ? { modifiedAt: new Date(modified) } : {}),
          };
        }
        if (item.kind === 'record') {
          if (item.record.offset > size) break;
          size = Math.max(size, item.record.offset + item.record.length);
        }
      }
      if (!exists) return undefined;
      return { size, complete: false, ...(modified ? { modifiedAt: new Date(modified) } : {}) };
    } catch (err) {
      throw esError(err, this.index, logId, 'stat');
    }
  }

  /**
   * Every attempt with tasklog's documents matching `filter`: a composite aggregation over
   * dag_id, run_id, task_id, map_index, try_number, paged with `after`. Documents Airflow wrote
   * itself carry no run_id/map_index and are not listed. Throws BackendUnavailableError,
   * InvalidInputError (the index maps the id fields as text only), AbortedError.
   */
  async *list(filter: AttemptFilter, options: ListOptions = {}): AsyncGenerator<AttemptKey> {
    const { signal } = options;
    const wanted = validateFilter(filter);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      const fields = await this.#existingFields(ctx, signal);
      if (!fields) return;
      const paths = {} as Record<IdField, string>;
      for (const f of ID_FIELDS) {
        const path = fields.exact[f];
        if (!path) {
          throw new InvalidInputError(
            `index ${this.index} maps ${f} as analyzed text only, so attempts cannot be listed; map it as keyword`,
          );
        }
        paths[f] = path;
      }
      const values: Record<IdField, unknown> = {
        dag_id: wanted.dagId,
        run_id: wanted.runId,
        task_id: wanted.taskId,
        map_index: wanted.mapIndex,
        try_number: wanted.tryNumber,
      };
      const filters: estypes.QueryDslQueryContainer[] = ID_FIELDS.filter(
        (f) => values[f] !== undefined,
      ).map((f) => ({ term: { [paths[f]]: values[f] as string | number } }));
      let after: estypes.AggregationsCompositeAggregateKey | undefined;
      for (;;) {
        throwIfAborted(signal);
        const res = await this.#call(
          () =>
            ctx.client.search(
              {
                index: this.index,
                size: 0,
                track_total_hits: false,
                query: { bool: { filter: filters } },
                aggs: {
                  attempts: {
                    composite: {
                      size: COMPOSITE_PAGE,
                      sources: ID_FIELDS.map((f) => ({ [f]: { terms: { field: paths[f] } } })),
                      ...(after ? { after } : {}),
                    },
                  },
                },
              },
              { signal },
            ),
          signal,
        );
        const agg = res.aggregations?.attempts as
          | {
              buckets?: { key: Record<string, unknown> }[];
              after_key?: estypes.AggregationsCompositeAggregateKey;
            }
          | undefined;
        const buckets = agg?.buckets ?? [];
        for (const bucket of buckets) {
          const k = keyOf(bucket.key);
          if (k && matchesFilter(k, wanted)) yield k;
        }
        if (buckets.length < COMPOSITE_PAGE || !agg?.after_key) return;
        after = agg.after_key;
      }
    } catch (err) {
      if (isIndexMissing(err)) return;
      throw esError(err, this.index, undefined, 'list');
    }
  }

  /** Deletes every document of the attempt; a missing attempt or index is not an error. */
  async delete(key: AttemptKey, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    const logId = this.logId(key);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      const fields = await this.#existingFields(ctx, signal);
      if (!fields) return;
      await this.#deleteDocs(ctx, fields, logId, undefined, signal);
    } catch (err) {
      throw esError(err, this.index, logId, 'delete');
    }
  }

  /** `GET /` (cluster info). Throws BackendUnavailableError. */
  async ping(options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      throwIfAborted(options.signal);
      const ctx = await this.#ctx();
      await ctx.client.info(undefined, { signal: options.signal });
    } catch (err) {
      throw esError(err, this.index, undefined, 'reach');
    }
  }

  async close(): Promise<void> {
    const pending = this.#context;
    this.#context = undefined;
    this.#fields = undefined;
    if (pending) await (await pending.catch(() => undefined))?.client.close();
  }

  // --- internals used by the writer -----------------------------------------------------------

  /** @internal One document as an NDJSON `index` action and source line. */
  documentLines(
    key: AttemptKey,
    logId: string,
    fields: Record<string, unknown>,
    id: string,
    timestamp: number,
  ): string {
    const doc = {
      log_id: logId,
      ...fields,
      [this.hostField]: this.hostName,
      '@timestamp': new Date(timestamp).toISOString(),
      dag_id: key.dagId,
      task_id: key.taskId,
      run_id: key.runId,
      map_index: key.mapIndex,
      try_number: key.tryNumber,
    };
    return `${JSON.stringify({ index: { _index: this.index, _id: id } })}\n${JSON.stringify(doc)}`;
  }

  /** Runs a request with retries on throttling, 5xx, timeouts and connection errors. */
  #call<T>(fn: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    return withRetry(fn, { ...this.#retry, retryable: isTransient, signal });
  }

  /** @internal The writer's requests go through the same retries. */
  call<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.#call(fn, signal);
  }

  /** @internal */
  get retryPolicy(): { maxAttempts: number; baseDelayMs: number; maxDelayMs: number } {
    return this.#retry;
  }

  /** @internal Size and sha256 of the stored log, read back (a resumed writer's finish). */
  async readBack(key: AttemptKey): Promise<{ size: number; sha256: string }> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of this.read(key)) {
      hash.update(chunk.bytes);
      size += chunk.bytes.length;
    }
    return { size, sha256: hash.digest('hex') };
  }

  #ctx(): Promise<Context> {
    this.#context ??= this.#createContext().catch((err: unknown) => {
      this.#context = undefined;
      throw err;
    });
    return this.#context;
  }

  async #createContext(): Promise<Context> {
    const sdk = await import('@elastic/elasticsearch');
    const o = this.#options;
    const ca = o.caFile ? await readFile(o.caFile) : undefined;
    /**
     * Offsets Airflow's stdout formatter writes are nanosecond timestamps (~1.7e18), beyond
     * JSON.parse's exact integers; `search_after` must get them back exactly, so sort values of
     * 16+ digits are kept as strings (Elasticsearch accepts strings for long sort fields).
     */
    class ExactSortSerializer extends sdk.Serializer {
      override deserialize<T = unknown>(json: string): T {
        return super.deserialize<T>(json.replace(/"sort":\[(-?\d{16,})(?=[,\]])/g, '"sort":["$1"'));
      }
    }
    /**
     * OpenSearch speaks the same REST API but sends no `X-Elastic-Product` header and rejects
     * the `compatible-with=9` media types, both of which the v9 client insists on; this
     * transport drops both.
     */
    class PlainTransport extends sdk.Transport {
      constructor(opts: ConstructorParameters<typeof sdk.Transport>[0]) {
        super({ ...opts, productCheck: null, vendoredHeaders: undefined } as never);
      }
    }
    const client: Client = new sdk.Client({
      node: o.node,
      ...(o.apiKey
        ? { auth: { apiKey: o.apiKey } }
        : o.username !== undefined
          ? { auth: { username: o.username, password: o.password ?? '' } }
          : {}),
      ...(ca ? { tls: { ca } } : {}),
      requestTimeout: o.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS,
      // Retries happen in #call (backoff with full jitter, 429 included), not in the client.
      maxRetries: 0,
      Serializer: ExactSortSerializer,
      ...(o.distribution === 'opensearch' ? { Transport: PlainTransport as never } : {}),
    });
    return { client };
  }

  /** The index's field layout; creates the index (tasklog's mapping) or adds missing fields. */
  async #ensureIndex(ctx: Context, signal: AbortSignal | undefined): Promise<Fields> {
    const known = await this.#existingFields(ctx, signal);
    if (known?.complete) return known;
    if (!known) {
      try {
        await this.#call(
          () =>
            ctx.client.indices.create(
              { index: this.index, mappings: { properties: this.#mappingProperties() } },
              { signal },
            ),
          signal,
        );
      } catch (err) {
        // Another writer (or a retried request that did arrive) created it first.
        if (errorType(err) !== 'resource_already_exists_exception') throw err;
      }
    } else {
      const missing = Object.fromEntries(
        Object.entries(this.#mappingProperties()).filter(([f]) => !known.mapped.has(f)),
      );
      await this.#call(
        () => ctx.client.indices.putMapping({ index: this.index, properties: missing }, { signal }),
        signal,
      );
    }
    this.#fields = undefined;
    const fields = await this.#existingFields(ctx, signal);
    if (!fields) throw new BackendUnavailableError(`index ${this.index} vanished after creation`);
    return fields;
  }

  #mappingProperties(): Record<string, estypes.MappingProperty> {
    return {
      log_id: { type: 'keyword' },
      offset: { type: 'long' },
      length: { type: 'long' },
      [this.messageField]: { type: 'text' },
      encoding: { type: 'keyword' },
      [this.hostField]: { type: 'keyword' },
      '@timestamp': { type: 'date' },
      dag_id: { type: 'keyword' },
      task_id: { type: 'keyword' },
      run_id: { type: 'keyword' },
      map_index: { type: 'long' },
      try_number: { type: 'long' },
      start: { type: 'boolean' },
      end: { type: 'boolean' },
      sha256: { type: 'keyword' },
    };
  }

  /** The index's field layout, or undefined when the index does not exist (not cached then). */
  async #existingFields(
    ctx: Context,
    signal: AbortSignal | undefined,
  ): Promise<Fields | undefined> {
    if (this.#fields) return this.#fields;
    const fields = await this.#readFields(ctx, signal);
    if (fields) this.#fields = fields;
    return fields;
  }

  async #readFields(ctx: Context, signal: AbortSignal | undefined): Promise<Fields | undefined> {
    let res: Record<string, { mappings?: { properties?: Record<string, MappingEntry> } }>;
    try {
      res = (await this.#call(
        () => ctx.client.indices.getMapping({ index: this.index }, { signal }),
        signal,
      )) as typeof res;
    } catch (err) {
      if (isIndexMissing(err)) return undefined;
      throw err;
    }
    // An alias may point at several indices; their mappings are merged (first one wins).
    const props: Record<string, MappingEntry> = {};
    for (const index of Object.values(res)) {
      for (const [name, entry] of Object.entries(index.mappings?.properties ?? {})) {
        props[name] ??= entry;
      }
    }
    const offset = props.offset?.type;
    if (offset !== undefined && !NUMERIC.has(offset)) {
      throw new InvalidInputError(
        `index ${this.index} maps "offset" as ${offset}; tasklog (and Airflow) need a numeric field`,
      );
    }
    return new Fields(props, Object.keys(this.#mappingProperties()));
  }

  /** The document with the highest `offset` (at most `maxOffsetField`), if any. */
  async #lastDoc(
    ctx: Context,
    fields: Fields,
    logId: string,
    maxOffsetField: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Hit | undefined> {
    const filter: estypes.QueryDslQueryContainer[] = [fields.logIdQuery(logId)];
    if (maxOffsetField !== undefined) filter.push({ range: { offset: { lte: maxOffsetField } } });
    const res = await this.#call(
      () =>
        ctx.client.search(
          {
            index: this.index,
            size: 1,
            track_total_hits: false,
            query: { bool: { filter } },
            sort: [{ offset: { order: 'desc' } }],
            _source: this.#sourceFields(),
          },
          { signal },
        ),
      signal,
    );
    return (res.hits.hits as Hit[]).find((h) => h._source?.log_id === logId);
  }

  async #isComplete(
    ctx: Context,
    fields: Fields,
    logId: string,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    if (fields.exactLogId(logId)) {
      const last = await this.#lastDoc(ctx, fields, logId, undefined, signal);
      return last !== undefined && classify(last._source, this.messageField).kind === 'end';
    }
    for await (const item of this.#items(ctx, fields, logId, 0, signal)) {
      if (item.kind === 'end') return true;
    }
    return false;
  }

  #sourceFields(): string[] {
    return [
      'log_id',
      'offset',
      'length',
      'message',
      'event',
      'encoding',
      'start',
      'end',
      'sha256',
      '@timestamp',
    ];
  }

  /**
   * The attempt's documents with `offset` >= `fromByte` + 1, in offset order, one search page
   * at a time (`search_after`). Documents Airflow wrote itself become records with computed byte
   * offsets; then the walk starts over at the log's first document, whatever `fromByte` was.
   */
  async *#items(
    ctx: Context,
    fields: Fields,
    logId: string,
    fromByte: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Item> {
    let airflowPos: number | undefined;
    for await (const hit of this.#hits(ctx, fields, logId, fromByte, signal)) {
      const doc = classify(hit._source, this.messageField);
      if (doc.kind !== 'airflow') {
        yield { ...doc, timestamp: timestampOf(hit._source) } as Item;
        continue;
      }
      airflowPos = 0;
      break;
    }
    if (airflowPos === undefined) return;
    for await (const hit of this.#hits(ctx, fields, logId, undefined, signal)) {
      const doc = classify(hit._source, this.messageField);
      const timestamp = timestampOf(hit._source);
      if (doc.kind !== 'airflow') continue; // tasklog's marker, if any
      if (doc.text === this.endOfLogMark) {
        yield { kind: 'end', size: airflowPos, timestamp };
        return;
      }
      const length = Buffer.byteLength(doc.text) + 1;
      yield {
        kind: 'record',
        record: { offset: airflowPos, length, text: doc.text },
        foreign: true,
        timestamp,
      };
      airflowPos += length;
    }
  }

  /** Raw hits of the attempt in `offset` order; `fromByte` undefined means every document. */
  async *#hits(
    ctx: Context,
    fields: Fields,
    logId: string,
    fromByte: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Hit> {
    const filter: estypes.QueryDslQueryContainer[] = [fields.logIdQuery(logId)];
    if (fromByte !== undefined && fromByte > 0) {
      filter.push({ range: { offset: { gte: fromByte + 1 } } });
    }
    let after: estypes.SortResults | undefined;
    for (;;) {
      throwIfAborted(signal);
      const res = await this.#call(
        () =>
          ctx.client.search(
            {
              index: this.index,
              size: this.pageSize,
              track_total_hits: false,
              query: { bool: { filter } },
              // (log_id, offset) is unique for tasklog's documents (their _id is built from it),
              // so offset alone is a total order and search_after never skips one.
              sort: [{ offset: { order: 'asc' } }],
              _source: this.#sourceFields(),
              ...(after ? { search_after: after } : {}),
            },
            { signal },
          ),
        signal,
      );
      const hits = res.hits.hits as Hit[];
      for (const hit of hits) {
        // match_phrase (text-mapped log_id) also matches longer ids that contain this one.
        if (hit._source?.log_id === logId) yield hit;
      }
      if (hits.length < this.pageSize) return;
      after = hits.at(-1)!.sort;
      if (!after) return;
    }
  }

  /**
   * Deletes the attempt's documents (with `offset` >= `fromByte` + 1 when given):
   * delete-by-query where log_id is a keyword, else by id after a scan (match_phrase on a text
   * log_id would also hit other attempts whose id contains this one).
   */
  async #deleteDocs(
    ctx: Context,
    fields: Fields,
    logId: string,
    fromByte: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    if (fields.exactLogId(logId)) {
      const filter: estypes.QueryDslQueryContainer[] = [fields.logIdQuery(logId)];
      if (fromByte !== undefined) filter.push({ range: { offset: { gte: fromByte + 1 } } });
      await this.#call(
        () =>
          ctx.client.deleteByQuery(
            {
              index: this.index,
              query: { bool: { filter } },
              refresh: true,
              conflicts: 'proceed',
            },
            { signal },
          ),
        signal,
      );
      return;
    }
    let ids: string[] = [];
    const flush = async () => {
      if (ids.length === 0) return;
      const ops = ids.map((id) => ({ delete: { _index: this.index, _id: id } }));
      ids = [];
      await this.#call(
        () => ctx.client.bulk({ operations: ops, refresh: true }, { signal }),
        signal,
      );
    };
    for await (const hit of this.#hits(ctx, fields, logId, fromByte, signal)) {
      ids.push(hit._id);
      if (ids.length >= this.bulkCount) await flush();
    }
    await flush();
  }
}

/** What a writer has queued: one document as NDJSON, and the log bytes it ends at. */
interface Queued {
  lines: string;
  bytes: number;
  end: number;
  offset: number;
}

class ElasticsearchLogWriter implements LogWriter {
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

  constructor(
    private readonly store: ElasticsearchStore,
    private readonly ctx: Context,
    private readonly key: AttemptKey,
    private readonly logId: string,
    committed: number,
    lastTimestamp: number,
  ) {
    this.#committed = committed;
    this.#sawAll = committed === 0;
    this.#splitter = new RecordSplitter(committed, store.maxPieceBytes);
    this.#lastTimestamp = lastTimestamp;
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
      // Every appended byte, an incomplete trailing UTF-8 character included (as base64).
      this.#enqueue(this.#splitter.flush());
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
    const field = this.store.messageField;
    for (const r of records) {
      const body: Record<string, unknown> = { offset: r.offset + 1, length: r.length };
      if (r.base64 !== undefined) {
        body[field] = r.base64;
        body.encoding = 'base64';
      } else body[field] = r.text ?? '';
      const lines = this.store.documentLines(
        this.key,
        this.logId,
        body,
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

interface Context {
  client: Client;
}

interface MappingEntry {
  type?: string;
  fields?: Record<string, { type?: string; ignore_above?: number }>;
}

const NUMERIC = new Set([
  'long',
  'integer',
  'short',
  'byte',
  'double',
  'float',
  'half_float',
  'scaled_float',
  'unsigned_long',
]);
const RESERVED = new Set([
  'log_id',
  'offset',
  'length',
  'message',
  'event',
  'encoding',
  '@timestamp',
  'dag_id',
  'task_id',
  'run_id',
  'map_index',
  'try_number',
  'start',
  'end',
  'sha256',
]);

/**
 * How to query the index's fields. tasklog's own mapping makes the id fields keywords; an index
 * Airflow (or Filebeat) created by dynamic mapping has them as `text` with a `.keyword`
 * sub-field that is empty for values over its `ignore_above` (256 characters).
 */
class Fields {
  readonly mapped: Set<string>;
  /** Exact (keyword or numeric) path of each id field, if there is one. */
  readonly exact: Partial<Record<IdField, string>> = {};
  /** Every field tasklog writes is mapped. */
  readonly complete: boolean;
  readonly #logId: { path: string; maxLength: number } | undefined;

  constructor(props: Record<string, MappingEntry>, wanted: string[]) {
    this.mapped = new Set(Object.keys(props));
    this.complete = wanted.every((f) => this.mapped.has(f));
    const exactPath = (name: string): { path: string; maxLength: number } | undefined => {
      const entry = props[name];
      if (!entry) return { path: name, maxLength: Number.POSITIVE_INFINITY };
      if (entry.type === 'keyword' || NUMERIC.has(entry.type ?? '')) {
        return { path: name, maxLength: Number.POSITIVE_INFINITY };
      }
      const sub = Object.entries(entry.fields ?? {}).find(([, f]) => f.type === 'keyword');
      if (!sub) return undefined;
      return {
        path: `${name}.${sub[0]}`,
        maxLength: sub[1].ignore_above ?? Number.POSITIVE_INFINITY,
      };
    };
    for (const f of ID_FIELDS) {
      const p = exactPath(f);
      if (p) this.exact[f] = p.path;
    }
    this.#logId = exactPath('log_id');
  }

  /** A log_id can be matched exactly (term) rather than as a phrase. */
  exactLogId(logId: string): boolean {
    return this.#logId !== undefined && logId.length <= this.#logId.maxLength;
  }

  logIdQuery(logId: string): estypes.QueryDslQueryContainer {
    if (this.exactLogId(logId)) return { term: { [this.#logId!.path]: logId } };
    // What Airflow itself queries; hits are checked for the exact id afterwards.
    return { match_phrase: { log_id: logId } };
  }
}

interface Hit {
  _id: string;
  _source?: Record<string, unknown>;
  sort?: estypes.SortResults;
}

type Classified =
  | { kind: 'start' }
  | { kind: 'end'; size: number; sha256?: string }
  | { kind: 'record'; record: LogRecord; foreign?: false }
  | { kind: 'airflow'; text: string };

type Item = (
  | { kind: 'start' }
  | { kind: 'end'; size: number; sha256?: string }
  | { kind: 'record'; record: LogRecord; foreign?: boolean }
) & { timestamp?: number };

/** What a document is: tasklog's marker, line or end record, or a line Airflow wrote. */
function classify(source: Record<string, unknown> | undefined, messageField: string): Classified {
  const s = source ?? {};
  const offset = Number(s.offset);
  const text = s[messageField] ?? s.message ?? s.event;
  if (s.length === undefined || s.length === null) {
    return { kind: 'airflow', text: typeof text === 'string' ? text : String(text ?? '') };
  }
  const length = Number(s.length);
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || length < 0) {
    throw new IntegrityError(
      `document of log ${String(s.log_id)} has a malformed offset/length (${String(s.offset)}/${String(s.length)})`,
    );
  }
  if (s.start === true) return { kind: 'start' };
  if (s.end === true) {
    const sha =
      typeof s.sha256 === 'string' && /^[0-9a-f]{64}$/.test(s.sha256) ? s.sha256 : undefined;
    return { kind: 'end', size: offset - 1, ...(sha ? { sha256: sha } : {}) };
  }
  if (offset < 1 || typeof text !== 'string') {
    throw new IntegrityError(
      `document of log ${String(s.log_id)} at offset ${String(s.offset)} is malformed`,
    );
  }
  const record: LogRecord = { offset: offset - 1, length };
  if (s.encoding === 'base64') record.base64 = text;
  else record.text = text;
  return { kind: 'record', record };
}

function timestampOf(source: Record<string, unknown> | undefined): number | undefined {
  const t = source?.['@timestamp'];
  if (typeof t !== 'string' && typeof t !== 'number') return undefined;
  const ms = typeof t === 'number' ? t : Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
}

function docId(logId: string, suffix: string): string {
  return createHash('sha1').update(logId).update('\0').update(suffix).digest('hex');
}

function keyOf(bucket: Record<string, unknown>): AttemptKey | undefined {
  try {
    return attemptKey({
      dagId: bucket.dag_id,
      runId: bucket.run_id,
      taskId: bucket.task_id,
      mapIndex: Number(bucket.map_index),
      tryNumber: Number(bucket.try_number),
    });
  } catch {
    return undefined;
  }
}

const LOG_ID_FIELDS: Record<string, keyof AttemptKey> = {
  dag_id: 'dagId',
  task_id: 'taskId',
  run_id: 'runId',
  map_index: 'mapIndex',
  try_number: 'tryNumber',
};

/** Python str.format with the attempt's fields, as Airflow renders `log_id_template`. */
function compileLogIdTemplate(template: string): (key: AttemptKey) => string {
  const parts: ({ text: string } | { field: keyof AttemptKey })[] = [];
  let text = '';
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    if ((ch === '{' || ch === '}') && template[i + 1] === ch) {
      text += ch;
      i++;
    } else if (ch === '{') {
      const close = template.indexOf('}', i);
      if (close < 0)
        throw new InvalidInputError(`log_id_template has an unclosed "{": ${template}`);
      const name = template.slice(i + 1, close);
      const field = Object.hasOwn(LOG_ID_FIELDS, name) ? LOG_ID_FIELDS[name] : undefined;
      if (!field) {
        throw new InvalidInputError(
          `log_id_template placeholder {${name}} is not supported; use ${Object.keys(LOG_ID_FIELDS)
            .map((n) => `{${n}}`)
            .join(', ')}`,
        );
      }
      if (text) parts.push({ text });
      text = '';
      parts.push({ field });
      i = close;
    } else if (ch === '}') {
      throw new InvalidInputError(`log_id_template has a single "}": ${template}`);
    } else text += ch;
  }
  if (text) parts.push({ text });
  for (const [name, field] of Object.entries(LOG_ID_FIELDS)) {
    if (!parts.some((p) => 'field' in p && p.field === field)) {
      // Without every field two attempts would share one log_id.
      throw new InvalidInputError(`log_id_template must contain {${name}}: ${template}`);
    }
  }
  return (key) => parts.map((p) => ('text' in p ? p.text : String(key[p.field]))).join('');
}

function validateIndexName(index: string): void {
  if (
    typeof index !== 'string' ||
    index === '' ||
    index !== index.toLowerCase() ||
    /[\\/*?"<>| ,#:]/.test(index) ||
    /^[-_+]/.test(index) ||
    index === '.' ||
    index === '..' ||
    Buffer.byteLength(index) > 255
  ) {
    throw new InvalidInputError(
      `Elasticsearch index name must be lower case, without \\ / * ? " < > | space , # : and not start with - _ +, got ${JSON.stringify(index)}`,
    );
  }
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

interface EsErrorShape {
  name?: string;
  message?: string;
  meta?: { statusCode?: number; body?: unknown };
}

function statusOf(err: unknown): number | undefined {
  return (err as EsErrorShape | undefined)?.meta?.statusCode;
}

/** `error.type` of an Elasticsearch error answer. */
function errorType(err: unknown): string | undefined {
  const body = (err as EsErrorShape | undefined)?.meta?.body as
    | { error?: { type?: string } | string }
    | undefined;
  return typeof body?.error === 'object' ? body.error.type : undefined;
}

function errorReason(err: unknown): string | undefined {
  const body = (err as EsErrorShape | undefined)?.meta?.body as
    | { error?: { reason?: string; root_cause?: { reason?: string }[] } | string }
    | undefined;
  if (typeof body?.error === 'string') return body.error;
  return body?.error?.root_cause?.[0]?.reason ?? body?.error?.reason;
}

function isIndexMissing(err: unknown): boolean {
  return statusOf(err) === 404 && errorType(err) === 'index_not_found_exception';
}

function isTransient(err: unknown): boolean {
  if (err instanceof TasklogError) return false;
  const e = err as EsErrorShape | undefined;
  if (e?.name === 'ResponseError') return TRANSIENT_STATUS.has(statusOf(err) ?? 0);
  return TRANSIENT_ERRORS.has(e?.name ?? '');
}

/**
 * The one place client errors become tasklog errors; each message names the index and the log,
 * each error keeps the client's as `cause`.
 */
function esError(
  err: unknown,
  index: string,
  logId: string | undefined,
  action: string,
): TasklogError {
  if (err instanceof TasklogError) return err;
  const e = (err ?? {}) as EsErrorShape;
  const name = e.name ?? 'Error';
  const status = statusOf(err);
  const type = errorType(err);
  const where = logId === undefined ? `index ${index}` : `log ${logId} in index ${index}`;
  const detail = `${type ?? name}${status ? ` (HTTP ${status})` : ''}${errorReason(err) ? `: ${errorReason(err)}` : e.message ? `: ${e.message}` : ''}`;
  const cause = { cause: err };
  if (name === 'RequestAbortedError' || name === 'AbortError') {
    return new AbortedError(`${action} ${where} was aborted`, cause);
  }
  if (name === 'ProductNotSupportedError') {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: the server is not Elasticsearch (no X-Elastic-Product header); for OpenSearch set elasticsearch.distribution = "opensearch"`,
      cause,
    );
  }
  if (status === 404 && type === 'index_not_found_exception') {
    return new NotFoundError(
      `index ${index} does not exist (while trying to ${action} ${where})`,
      cause,
    );
  }
  if (status === 401 || status === 403) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: access denied (${detail}); check elasticsearch.username/password or api_key`,
      cause,
    );
  }
  if (status === 413) {
    return new InvalidInputError(
      `cannot ${action} ${where}: request larger than the cluster's http.max_content_length; lower elasticsearch.bulk_bytes`,
      cause,
    );
  }
  if (status === 400) {
    return new InvalidInputError(
      `cannot ${action} ${where}: Elasticsearch refused it (${detail})`,
      cause,
    );
  }
  if (TRANSIENT_ERRORS.has(name) || (status !== undefined && TRANSIENT_STATUS.has(status))) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: Elasticsearch is unreachable, throttling or failing even after retries (${detail})`,
      cause,
    );
  }
  return new BackendUnavailableError(`cannot ${action} ${where}: ${detail}`, cause);
}
