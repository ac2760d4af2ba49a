import { z } from 'zod';
import { integer, optionalText, seconds, text } from '../../config/fields.js';

/** Airflow's default `[elasticsearch] log_id_template`. */
export const AIRFLOW_LOG_ID_TEMPLATE = '{dag_id}-{task_id}-{run_id}-{map_index}-{try_number}';

const MIB = 1024 * 1024;
/** 6 x 16 MiB of escaped JSON and a document's other fields fit in ES's default 100 MB request. */
export const MAX_LINE_BYTES = 16 * MIB;
const LINE_BYTES = 'expected a number of bytes from 1024 to 16777216 (16 MiB)';

/**
 * The `[elasticsearch]` section: Elasticsearch and OpenSearch
 * (`elasticsearch+http(s)://host:port/INDEX`). The only declaration of these settings and their
 * defaults; the store's camelCase options default to these too.
 */
export const elasticsearchSettings = z.object({
  log_id_template: text('a log_id template')
    .default(AIRFLOW_LOG_ID_TEMPLATE)
    .describe("Airflow's `log_id_template`."),
  end_of_log_mark: text('an end-of-log mark')
    .default('end_of_log')
    .describe("Airflow's `end_of_log_mark`."),
  message_field: z
    .enum(['message', 'event'], { error: 'expected message or event' })
    .default('message')
    .describe('`message` (Airflow 2) or `event` (Airflow 3).'),
  host_field: text('a field name').default('host').describe("Airflow's `host_field`."),
  username: optionalText('a user name').describe('Basic auth (with `password`).'),
  password: optionalText('a password').describe('Basic auth (with `username`).'),
  api_key: optionalText('an API key').describe('`Authorization: ApiKey …` instead of basic auth.'),
  ca_file: optionalText('a CA certificate file').describe(
    "PEM file of the CA that signed the cluster's certificate.",
  ),
  request_timeout_seconds: seconds.default(30).describe('Timeout of one HTTP request.'),
  max_retries: integer('expected a number >= 0', 0)
    .default(8)
    .describe('Retries of a failed request or of bulk items rejected with 429.'),
  bulk_bytes: integer('expected a number of bytes >= 1024', 1024)
    .default(5 * MIB)
    .describe('Largest `_bulk` request in bytes.'),
  bulk_count: integer('expected a number of documents >= 1')
    .default(10_000)
    .describe('Most documents in one `_bulk` request.'),
  // One document per request at worst, and JSON can make it 6x the line: 6 x 16 MiB fits
  // Elasticsearch's default http.max_content_length (100 MB).
  max_line_bytes: integer(LINE_BYTES, 1024, MAX_LINE_BYTES)
    .default(MAX_LINE_BYTES)
    .describe('Longest line kept in one document; a longer one is split (at most 16 MiB).'),
  distribution: z
    .enum(['elasticsearch', 'opensearch'], { error: 'expected elasticsearch or opensearch' })
    .default('elasticsearch')
    .describe('`opensearch` skips the Elasticsearch product check of the client.'),
});

export type ElasticsearchSettings = z.output<typeof elasticsearchSettings>;
export const elasticsearchDefaults: ElasticsearchSettings = elasticsearchSettings.parse({});

/**
 * Defaults of the store's options that are not settings of the `[elasticsearch]` section (tests
 * and embedders tune them through the constructor).
 */
export const elasticsearchOptionDefaults = {
  /** Hits per search page (Airflow reads 1000). */
  pageSize: 1000,
  /** A search page holds only documents starting within this many log bytes. */
  pageWindowBytes: 16 * MIB,
  /** Backoff base and cap of every request's retries, in ms. */
  retryBaseDelayMs: 100,
  retryMaxDelayMs: 20_000,
} as const;
