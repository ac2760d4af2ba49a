import { hostname } from 'node:os';
import { InvalidInputError } from '../../errors.js';
import { KEY_FIELDS, SOURCE_FIELDS, STRUCTURED_FIELDS } from './documents.js';
import { LogIdTemplate } from './log-id.js';
import { MAX_PAGE_SIZE } from './paging.js';
import {
  elasticsearchDefaults as defaults,
  type ElasticsearchSettings,
  MAX_LINE_BYTES,
  elasticsearchOptionDefaults as optionDefaults,
} from './settings.js';

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
   * rejected with 429, with exponential backoff and full jitter. Default `max_retries` of the settings.
   */
  maxRetries?: number;
  /** Backoff base and cap in ms. Default 100 and 20,000. */
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  /** Largest `_bulk` body in bytes (Elastic advises starting around 5 MB). Default 5 MiB. */
  bulkBytes?: number;
  /** Most documents in one `_bulk` request. Default `bulk_count` of the settings. */
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

/** Tries of every request and of rejected bulk items, with backoff and full jitter. */
export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Connection options, used as they were given (checked together). */
type GivenOptions = 'username' | 'password' | 'apiKey' | 'caFile' | 'distribution';

/** Every option checked and defaulted; the connection options as they were given. */
export type ResolvedElasticsearchOptions = Required<
  Omit<
    ElasticsearchStoreOptions,
    GivenOptions | 'logIdTemplate' | 'maxRetries' | 'retryBaseDelayMs' | 'retryMaxDelayMs'
  >
> &
  Pick<ElasticsearchStoreOptions, GivenOptions> & {
    /** `elasticsearch+http(s)://host[:port][/path]/INDEX`, without credentials. */
    url: string;
    logIdTemplate: LogIdTemplate;
    retry: RetryPolicy;
  };

/** Fields tasklog writes itself, which `host_field` must not name. */
const RESERVED = new Set([...SOURCE_FIELDS, ...KEY_FIELDS, ...STRUCTURED_FIELDS]);

/** Every option checked and defaulted. Throws InvalidInputError naming the option. */
export function resolveElasticsearchOptions(
  options: ElasticsearchStoreOptions,
): ResolvedElasticsearchOptions {
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
  const bulkBytes = int('bulkBytes', options.bulkBytes, defaults.bulk_bytes, 1024);
  const bulkCount = int('bulkCount', options.bulkCount, defaults.bulk_count, 1);
  const maxLineBytes = int('maxLineBytes', options.maxLineBytes, defaults.max_line_bytes, 4);
  if (maxLineBytes > MAX_LINE_BYTES) {
    throw new InvalidInputError(
      `Elasticsearch max_line_bytes must be <= ${MAX_LINE_BYTES} (a document must fit in one request), got ${maxLineBytes}`,
    );
  }
  const pageSize = int('pageSize', options.pageSize, optionDefaults.pageSize, 1);
  const pageWindowBytes = int(
    'pageWindowBytes',
    options.pageWindowBytes,
    optionDefaults.pageWindowBytes,
    1,
  );
  if (pageSize > MAX_PAGE_SIZE) {
    throw new InvalidInputError(`Elasticsearch pageSize must be <= ${MAX_PAGE_SIZE}`);
  }
  const retry: RetryPolicy = {
    maxAttempts: int('maxRetries', options.maxRetries, defaults.max_retries, 0) + 1,
    baseDelayMs: int(
      'retryBaseDelayMs',
      options.retryBaseDelayMs,
      optionDefaults.retryBaseDelayMs,
      0,
    ),
    maxDelayMs: int('retryMaxDelayMs', options.retryMaxDelayMs, optionDefaults.retryMaxDelayMs, 0),
  };
  const requestTimeoutMs = int(
    'requestTimeoutMs',
    options.requestTimeoutMs,
    defaults.request_timeout_seconds * 1000,
    1,
  );
  if ((options.username === undefined) !== (options.password === undefined)) {
    throw new InvalidInputError('Elasticsearch username and password must be given together');
  }
  if (options.apiKey !== undefined && options.username !== undefined) {
    throw new InvalidInputError('Elasticsearch takes either api_key or username/password');
  }
  const endOfLogMark = (options.endOfLogMark ?? defaults.end_of_log_mark).trim();
  if (endOfLogMark === '') throw new InvalidInputError('end_of_log_mark must not be empty');
  const messageField = options.messageField ?? defaults.message_field;
  if (messageField !== 'message' && messageField !== 'event') {
    throw new InvalidInputError(`message_field must be "message" or "event"`);
  }
  const hostField = options.hostField ?? defaults.host_field;
  if (!/^[A-Za-z0-9_@][A-Za-z0-9_.@-]*$/.test(hostField) || RESERVED.has(hostField)) {
    throw new InvalidInputError(
      `host_field must be a plain field name not used by tasklog, got ${hostField}`,
    );
  }
  const hostName = options.hostName ?? hostname();
  const logIdTemplate = new LogIdTemplate(options.logIdTemplate ?? defaults.log_id_template);
  node.username = '';
  node.password = '';
  const scheme = node.protocol === 'https:' ? 'elasticsearch+https' : 'elasticsearch+http';
  return {
    node: options.node,
    index: options.index,
    url: `${scheme}://${node.host}${node.pathname.replace(/\/+$/, '')}/${options.index}`,
    logIdTemplate,
    endOfLogMark,
    messageField,
    hostField,
    hostName,
    username: options.username,
    password: options.password,
    apiKey: options.apiKey,
    caFile: options.caFile,
    requestTimeoutMs,
    retry,
    bulkBytes,
    bulkCount,
    maxLineBytes,
    pageSize,
    pageWindowBytes,
    distribution: options.distribution,
  };
}

/**
 * The options of `elasticsearch+https://[user:password@]host[:port][/path]/INDEX` (or
 * `elasticsearch+http`): credentials in the URL are used for basic auth, unless the
 * `[elasticsearch]` section names its own; then `overrides`.
 */
export function optionsFromUrl(
  url: string,
  es: Partial<ElasticsearchSettings>,
  overrides: Partial<ElasticsearchStoreOptions>,
): ElasticsearchStoreOptions {
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
  return {
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
  };
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

/** The URL without its credentials, for messages. */
function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
