import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Client, estypes } from '@elastic/elasticsearch';
import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import {
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  InvalidInputError,
  NotFoundError,
  OffsetOutOfRangeError,
} from '../../errors.js';
import type { AttemptFilter } from '../../path-template.js';
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
import { type LogRecord, RecordAssembler } from '../shared/log-records.js';
import { throwIfAborted, validateFilter } from '../shared/store-checks.js';
import {
  AirflowLogJoiner,
  documentRecord,
  EXACT_FIELDS,
  heldBytes,
  LineDocumentBuilder,
  STRUCTURED_FIELDS,
} from './documents.js';
import { errorType, esError, isIndexMissing, isTransient } from './errors.js';
import { LogIdTemplate } from './log-id.js';
import {
  allDocuments,
  type Hit,
  MAX_PAGE_SIZE,
  ownDocuments,
  type SearchByOffset,
} from './paging.js';
import { type Context, ElasticsearchLogWriter } from './writer.js';

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
  max_line_bytes: number;
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
   * Longest line kept in one document; a longer line is split into documents of at most this
   * many bytes (Airflow then shows the pieces as separate lines). One document goes in one
   * `_bulk` request, and JSON can make it 6x the line, so it must stay under a sixth of the
   * cluster's `http.max_content_length` (100 MB by default). Default and maximum 16 MiB.
   */
  maxLineBytes?: number;
  /** Hits per search page (Airflow reads 1000). Default 1000. */
  pageSize?: number;
  /**
   * A search page holds only documents starting within this many log bytes (plus one line), so
   * reading long lines stays bounded in memory. Default 16 MiB.
   */
  pageWindowBytes?: number;
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
/** 6 x 16 MiB of escaped JSON and a document's other fields fit in ES's default 100 MB request. */
export const MAX_LINE_BYTES = 16 * MIB;
const DEFAULT_PAGE_SIZE = 1000;
const DEFAULT_PAGE_WINDOW_BYTES = 16 * MIB;
const DEFAULT_MAX_RETRIES = 7;
const DEFAULT_TIMEOUT_MS = 30_000;
const COMPOSITE_PAGE = 1000;
const ID_FIELDS = ['dag_id', 'run_id', 'task_id', 'map_index', 'try_number'] as const;
type IdField = (typeof ID_FIELDS)[number];

/**
 * The `elasticsearch+https://host:9200/INDEX` archive, one document per line, readable by
 * Airflow's Elasticsearch task handler (providers `ElasticsearchTaskHandler`).
 *
 * A document: `log_id` (Airflow's template), `offset`, `length`, the line as Airflow should show
 * it in `message` (or `event`), `host`, `@timestamp`, Airflow's json fields `dag_id`, `task_id`,
 * `run_id`, `map_index`, `try_number`, and, where the shown text alone would not give the exact
 * bytes back, hidden fields (see documents.ts): CRLF, bytes that are not UTF-8, a
 * character a flush cut in two, Airflow 3's JSON lines shown as their `event`.
 *
 * - `offset` is the byte offset of the line's first byte PLUS ONE. Airflow pages with
 *   `range offset > N` starting at N = 0 (its own writer counts from 1), so a 0 would hide the
 *   first line from Airflow. `length` is the number of log bytes the document covers.
 * - A line up to `maxLineBytes` (16 MiB) is one document; a longer one is split (never inside
 *   a character), and so is a running attempt's unfinished line at a flush; offsets and
 *   lengths join the pieces exactly, Airflow shows each as a line.
 * - The end-of-log document has the end mark as its text (Airflow stops tailing on it),
 *   `offset` = size + 1, `length` 0, `end: true`, `sha256`.
 * - An opened attempt gets a start marker (`offset` 0, `length` 0, `start: true`) so it
 *   exists before its first line; Airflow's `offset > 0` never returns it.
 * - `_id` = sha1(log_id, offset): a retried bulk overwrites instead of duplicating.
 * - Near real time: a document is searchable after the index's next refresh (`refresh_interval`,
 *   1 s by default). flush() and finish() send their last request with `refresh=wait_for`, so
 *   what they report committed is readable when they resolve (up to 1 s per flush); lines a
 *   running writer sent on its own (a full bulk) may stay invisible for up to that long.
 * - Documents Airflow's own shippers wrote (no `length`; `offset` a nanosecond timestamp or a
 *   counter, possibly repeated) read as Airflow shows them: their messages in `offset` order
 *   joined with "\n", up to the end mark (AirflowLogJoiner); reading such a log from offset N
 *   scans it from its start.
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
  readonly maxLineBytes: number;
  readonly pageSize: number;
  readonly pageWindowBytes: number;
  readonly #options: ElasticsearchStoreOptions;
  readonly #logIdTemplate: LogIdTemplate;
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
    this.maxLineBytes = int('maxLineBytes', options.maxLineBytes, MAX_LINE_BYTES, 4);
    if (this.maxLineBytes > MAX_LINE_BYTES) {
      throw new InvalidInputError(
        `Elasticsearch max_line_bytes must be <= ${MAX_LINE_BYTES} (a document must fit in one request), got ${this.maxLineBytes}`,
      );
    }
    this.pageSize = int('pageSize', options.pageSize, DEFAULT_PAGE_SIZE, 1);
    this.pageWindowBytes = int(
      'pageWindowBytes',
      options.pageWindowBytes,
      DEFAULT_PAGE_WINDOW_BYTES,
      1,
    );
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
    this.#logIdTemplate = new LogIdTemplate(options.logIdTemplate ?? AIRFLOW_LOG_ID_TEMPLATE);
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
      maxLineBytes: es.max_line_bytes,
      distribution: es.distribution,
      ...overrides,
    });
  }

  /** Airflow's log_id of an attempt. */
  logId(key: AttemptKey): string {
    return this.#logIdTemplate.render(attemptKey(key));
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
    const logId = this.#logIdTemplate.render(k);
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
      // The end of the last line, for what the new writer's first document must show.
      let lastBytes = Buffer.alloc(0);
      let lastEndedLine = true;
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
        for (const chunk of assembler.add(item.record)) {
          lastBytes = Buffer.concat([lastBytes, chunk.bytes.subarray(-4)]).subarray(-4);
          lastEndedLine = lastBytes.at(-1) === 0x0a;
        }
        committed = assembler.next;
        lastTimestamp = Math.max(lastTimestamp, item.timestamp ?? 0);
      }
      if (stale) await this.#deleteDocs(ctx, fields, logId, committed, signal);
      const writer = new ElasticsearchLogWriter(this, ctx, k, logId, committed, lastTimestamp, {
        builder: new LineDocumentBuilder(
          this.messageField,
          this.#structuredFields(fields),
          heldBytes(lastBytes, lastEndedLine),
        ),
      });
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
          const doc = classifyHead(head._source);
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
        const doc = classifyHead(last._source);
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
   * Every attempt with documents matching `filter`: tasklog's by a composite aggregation over
   * dag_id, run_id, task_id, map_index, try_number; those Airflow's shippers wrote (no run_id,
   * no map_index) by their `log_id` (a `prefix` query from what the filter pins, parsed back with
   * the template; an id that splits more than one way, e.g. `-` inside ids of a `-` template,
   * needs dag_id and task_id in the filter). Throws BackendUnavailableError, InvalidInputError
   * (the index maps the id fields as text only), AbortedError.
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
      const sources = ID_FIELDS.map((f) => ({ [f]: { terms: { field: paths[f] } } }));
      const listed = new Set<string>();
      for await (const bucket of this.#buckets(
        ctx,
        { bool: { filter: filters } },
        sources,
        signal,
      )) {
        const k = keyOf(bucket);
        if (!k || !matchesFilter(k, wanted)) continue;
        listed.add(this.#logIdTemplate.render(k));
        yield k;
      }
      // Attempts only Airflow's shippers indexed carry no run_id or map_index: their log_id,
      // parsed with the template, names them (where it splits only one way).
      const logIdPath = fields.logIdPath;
      if (!logIdPath) return;
      const prefix = this.#logIdTemplate.prefix(wanted);
      const query: estypes.QueryDslQueryContainer = {
        bool: {
          filter: [
            prefix ? { prefix: { [logIdPath]: prefix } } : { exists: { field: logIdPath } },
            { exists: { field: 'offset' } },
          ],
          must_not: [{ exists: { field: 'length' } }],
        },
      };
      const byLogId = [{ log_id: { terms: { field: logIdPath } } }];
      for await (const bucket of this.#buckets(ctx, query, byLogId, signal)) {
        const logId = String(bucket.log_id);
        const k = this.#logIdTemplate.parse(logId, wanted);
        if (!k || listed.has(logId)) continue;
        listed.add(logId);
        yield k;
      }
    } catch (err) {
      if (isIndexMissing(err)) return;
      throw esError(err, this.index, undefined, 'list');
    }
  }

  /** Every bucket key of a composite aggregation over `sources`, paged with `after`. */
  async *#buckets(
    ctx: Context,
    query: estypes.QueryDslQueryContainer,
    sources: Record<string, estypes.AggregationsCompositeAggregationSource>[],
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Record<string, unknown>> {
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
              query,
              aggs: {
                attempts: {
                  composite: { size: COMPOSITE_PAGE, sources, ...(after ? { after } : {}) },
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
      for (const bucket of buckets) yield bucket.key;
      if (buckets.length < COMPOSITE_PAGE || !agg?.after_key) return;
      after = agg.after_key;
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
      // Only what makes the log exact again; never searched, so never indexed.
      crlf: { type: 'boolean', index: false },
      head_skip: { type: 'integer', index: false },
      tail_base64: { type: 'binary' },
      raw_text: { type: 'text', index: false },
      raw_base64: { type: 'binary' },
      // Airflow 3 shows these of each document (TASK_LOG_FIELDS), taken from its JSON lines.
      ...(this.messageField === 'event'
        ? {
            timestamp: { type: 'date' },
            level: { type: 'keyword' },
            logger: { type: 'keyword' },
            chan: { type: 'keyword' },
          }
        : {}),
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
            _source: HEAD_FIELDS,
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
      return last !== undefined && classifyHead(last._source).kind === 'end';
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
      ...EXACT_FIELDS,
      'start',
      'end',
      'sha256',
      '@timestamp',
    ];
  }

  /** Structured fields of Airflow 3's lines the index can take (event mode only). */
  #structuredFields(fields: Fields): Set<string> {
    if (this.messageField !== 'event') return new Set();
    const fits = (name: string, type: string | undefined) =>
      type === undefined ||
      type === 'keyword' ||
      type === 'text' ||
      (name === 'timestamp' && type === 'date');
    return new Set(STRUCTURED_FIELDS.filter((f) => fits(f, fields.typeOf(f))));
  }

  /**
   * The attempt's documents with `offset` >= `fromByte` + 1, in offset order. tasklog's own are
   * paged by byte windows (ownDocuments). Documents Airflow's shippers wrote become records of
   * the text Airflow shows (AirflowLogJoiner); then the walk starts over at the log's first
   * document, whatever `fromByte` was, with paging that survives tied offsets (allDocuments).
   */
  async *#items(
    ctx: Context,
    fields: Fields,
    logId: string,
    fromByte: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Item> {
    const search = this.#searcher(ctx, signal);
    const logIdQuery = fields.logIdQuery(logId);
    let foreign = false;
    const own = ownDocuments(
      search,
      { logIdQuery, from: fromByte > 0 ? fromByte + 1 : 0, pageSize: this.pageSize },
      this.pageWindowBytes,
    );
    for await (const hit of own) {
      // match_phrase (text-mapped log_id) also matches longer ids that contain this one.
      if (hit._source?.log_id !== logId) continue;
      const doc = classify(hit._source, this.messageField);
      if (doc.kind !== 'airflow') {
        yield { ...doc, timestamp: timestampOf(hit._source) } as Item;
        continue;
      }
      foreign = true;
      break;
    }
    if (!foreign) return;
    const joiner = new AirflowLogJoiner(this.endOfLogMark);
    for await (const hit of allDocuments(search, { logIdQuery, pageSize: this.pageSize })) {
      if (hit._source?.log_id !== logId) continue;
      const doc = classify(hit._source, this.messageField);
      if (doc.kind !== 'airflow') continue; // tasklog's marker, if any
      const timestamp = timestampOf(hit._source);
      const line = joiner.add(String(hit.sort?.[0]), doc.text);
      if (!line) continue;
      if (line.kind === 'end') {
        yield { kind: 'end', size: line.size, timestamp };
        return;
      }
      yield { kind: 'record', record: line.record, foreign: true, timestamp };
    }
  }

  /** One page of the attempt's documents, sorted by `offset`, with retries and the signal. */
  #searcher(ctx: Context, signal: AbortSignal | undefined): SearchByOffset {
    return async ({ filter, size, searchAfter }) => {
      throwIfAborted(signal);
      const res = await this.#call(
        () =>
          ctx.client.search(
            {
              index: this.index,
              size,
              track_total_hits: false,
              query: { bool: { filter } },
              sort: [{ offset: { order: 'asc' } }],
              _source: this.#sourceFields(),
              ...(searchAfter ? { search_after: searchAfter } : {}),
            },
            { signal },
          ),
        signal,
      );
      return res.hits.hits as Hit[];
    };
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
    const docs = allDocuments(this.#searcher(ctx, signal), {
      logIdQuery: fields.logIdQuery(logId),
      ...(fromByte !== undefined ? { from: fromByte + 1 } : {}),
      pageSize: this.pageSize,
    });
    for await (const hit of docs) {
      if (hit._source?.log_id !== logId) continue;
      ids.push(hit._id);
      if (ids.length >= this.bulkCount) await flush();
    }
    await flush();
  }
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
  ...EXACT_FIELDS,
  ...STRUCTURED_FIELDS,
]);

/**
 * How to query the index's fields. tasklog's own mapping makes the id fields keywords; an index
 * Airflow (or Filebeat) created by dynamic mapping has them as `text` with a `.keyword`
 * sub-field that is empty for values over its `ignore_above` (256 characters).
 */
class Fields {
  readonly mapped: Set<string>;
  readonly #types = new Map<string, string | undefined>();
  /** Exact (keyword or numeric) path of each id field, if there is one. */
  readonly exact: Partial<Record<IdField, string>> = {};
  /** Every field tasklog writes is mapped. */
  readonly complete: boolean;
  readonly #logId: { path: string; maxLength: number } | undefined;

  constructor(props: Record<string, MappingEntry>, wanted: string[]) {
    this.mapped = new Set(Object.keys(props));
    for (const [name, entry] of Object.entries(props))
      this.#types.set(name, entry.type ?? 'object');
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

  /** The mapped type of a top-level field (`object` for objects), undefined when unmapped. */
  typeOf(name: string): string | undefined {
    return this.#types.get(name);
  }

  /** The keyword path of `log_id` (tasklog's field or dynamic mapping's `.keyword`), if any. */
  get logIdPath(): string | undefined {
    return this.#logId && this.mapped.has('log_id') ? this.#logId.path : undefined;
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
  if (s.length === undefined || s.length === null) {
    const text = s[messageField] ?? s.message ?? s.event;
    return { kind: 'airflow', text: typeof text === 'string' ? text : String(text ?? '') };
  }
  const offset = Number(s.offset);
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
  return { kind: 'record', record: documentRecord(s, messageField) };
}

/** Fields enough to tell where a document stands (#lastDoc: never a 16 MiB line's text). */
const HEAD_FIELDS = ['log_id', 'offset', 'length', 'start', 'end', 'sha256', '@timestamp'];

/** classify() of a document read with HEAD_FIELDS: a record's extent, without its bytes. */
function classifyHead(source: Record<string, unknown> | undefined): Classified {
  const s = source ?? {};
  if (s.length === undefined || s.length === null || s.start === true || s.end === true) {
    return classify(s, 'message');
  }
  const offset = Number(s.offset) - 1;
  const length = Number(s.length);
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new IntegrityError(
      `document of log ${String(s.log_id)} has a malformed offset/length (${String(s.offset)}/${String(s.length)})`,
    );
  }
  return { kind: 'record', record: { offset, length } };
}

function timestampOf(source: Record<string, unknown> | undefined): number | undefined {
  const t = source?.['@timestamp'];
  if (typeof t !== 'string' && typeof t !== 'number') return undefined;
  const ms = typeof t === 'number' ? t : Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
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
