import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { InvalidInputError } from '../errors.js';
import { PathTemplate } from '../path-template.js';
import type { TasklogConfig } from './types.js';

/**
 * Set on a zod issue whose message already quotes the offending value, so the loader does not
 * append `, got "..."` a second time.
 */
export const MESSAGE_QUOTES_VALUE = 'messageQuotesValue';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const STORE_SCHEMES = [
  'file:',
  's3:',
  'gs:',
  'cloudwatch:',
  'elasticsearch+http:',
  'elasticsearch+https:',
  'stackdriver:',
] as const;

const folder = (what: string) =>
  z
    .string({ error: `expected ${what} (a non-empty path)` })
    .min(1, { error: `expected ${what} (a non-empty path)` });

const bool = z.preprocess(
  // Environment values are strings; `1`/`0` is what shell scripts and compose files tend to use.
  (v) => {
    if (typeof v !== 'string') return v;
    const s = v.trim().toLowerCase();
    if (s === 'true' || s === '1') return true;
    if (s === 'false' || s === '0') return false;
    return v;
  },
  z.boolean({ error: 'expected a boolean (true, false, 1 or 0)' }),
);

const numeric = (v: unknown) =>
  typeof v === 'string' && /^\s*[-+]?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v;

const PORT = 'expected a port number 0-65535 (0 = any free port)';
const port = z.preprocess(
  numeric,
  z
    .number({ error: PORT })
    .int({ error: PORT })
    .min(0, { error: PORT })
    .max(65535, { error: PORT }),
);

const SECONDS = 'expected a number of seconds >= 0';
const seconds = z.preprocess(
  numeric,
  z.number({ error: SECONDS }).min(0, { error: SECONDS }).finite({ error: SECONDS }),
);

const pathTemplate = z
  .string({ error: 'expected a path template string' })
  .superRefine((v, ctx) => {
    try {
      new PathTemplate(v);
    } catch (err) {
      if (!(err instanceof InvalidInputError)) throw err;
      ctx.addIssue({
        code: 'custom',
        message: err.message,
        params: { [MESSAGE_QUOTES_VALUE]: true },
      });
    }
  });

const STORE_EXPECTED = `expected a store URL with scheme ${STORE_SCHEMES.map((s) => `${s}//`).join(', ')} or an absolute path`;

const storeUrl = z.string({ error: STORE_EXPECTED }).transform((v, ctx) => {
  const fail = (message: string): never => {
    ctx.issues.push({ code: 'custom', message, input: v });
    return z.NEVER;
  };
  if (v.startsWith('/')) return pathToFileURL(v).href;
  // Not `new URL(...)` for the scheme: a CloudWatch log group ARN (`arn:aws:logs:...`) in the
  // authority position is not a valid WHATWG URL.
  const scheme = /^([a-z][a-z0-9+.-]*:)\/\//i.exec(v)?.[1]?.toLowerCase();
  if (!scheme || !(STORE_SCHEMES as readonly string[]).includes(scheme))
    return fail(STORE_EXPECTED);
  if (scheme === 'cloudwatch:') {
    if (v.length <= 'cloudwatch://'.length) return fail('expected cloudwatch://<log group ARN>');
    return v;
  }
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return fail(`${STORE_EXPECTED} (it does not parse as a URL)`);
  }
  if (scheme === 'file:') {
    if (url.host !== '') {
      return fail(
        `expected file:///abs/path (three slashes): in file://${url.host}/..., "${url.host}" is a host name, not a relative folder`,
      );
    }
    if (!/^file:\/\/\//i.test(v)) return fail('expected file:///abs/path (three slashes)');
  } else if ((scheme === 's3:' || scheme === 'gs:') && url.host === '') {
    return fail(`expected ${scheme}//BUCKET/optional/prefix`);
  }
  return v;
});

const CATALOG_EXPECTED =
  'expected sqlite:///abs/path.db (three slashes for an absolute path), sqlite::memory: or postgres://user@host/db';

const catalogUrl = z.string({ error: CATALOG_EXPECTED }).superRefine((v, ctx) => {
  if (v === 'sqlite::memory:') return;
  if (/^sqlite:\/\/\/./i.test(v)) return;
  if (/^postgres(ql)?:\/\//i.test(v)) {
    try {
      if (new URL(v).host !== '') return;
    } catch {
      // reported below
    }
  }
  ctx.addIssue({ code: 'custom', message: CATALOG_EXPECTED });
});

const BYTES = 'expected a number of bytes >= 1';
const ES_LINE_BYTES = 'expected a number of bytes from 1024 to 16777216 (16 MiB)';
const positiveInt = (what: string) =>
  z.preprocess(numeric, z.number({ error: what }).int({ error: what }).min(1, { error: what }));

const optionalText = (what: string) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.string({ error: `expected ${what}` }).optional(),
  );

const host = z
  .string({ error: 'expected a host name or IP address to listen on' })
  .min(1, { error: 'expected a host name or IP address to listen on' });

const level = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim().toLowerCase() : v),
  z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }),
);

/**
 * The whole configuration. Input values may be strings (environment, flags) and are coerced;
 * relative folders are kept as given, because the folder they are relative to depends on where
 * each value came from (the loader resolves them).
 */
export const configSchema = z.object({
  core: z.object({
    base_log_folder: folder('a log folder'),
    path_template: pathTemplate,
    delete_local_copy: bool,
    state_folder: folder('a state folder'),
    sensitive_names: z.string({ error: 'expected names separated by commas' }),
    umask: z
      .string({ error: 'expected an octal file mode mask such as 027' })
      .regex(/^0?[0-7]{3}$/, { error: 'expected an octal file mode mask such as 027' }),
  }),
  store: z.object({
    url: storeUrl,
    compression: z.enum(['none', 'gzip'], { error: 'expected "none" or "gzip"' }),
    flush_interval: seconds,
    flush_bytes: positiveInt(BYTES),
    read_urls: z.string({ error: 'expected store URLs separated by commas' }),
    retry_max_interval: seconds,
    finish_grace: seconds,
  }),
  s3: z.object({
    region: optionalText('an AWS region such as eu-west-1'),
    endpoint: optionalText('an endpoint URL such as https://minio.example:9000').refine(
      (v) => v === undefined || /^https?:\/\/[^/]/.test(v),
      { error: 'expected an http:// or https:// endpoint URL' },
    ),
    force_path_style: bool,
    role_arn: optionalText('a role ARN such as arn:aws:iam::123456789012:role/tasklog'),
    role_session_name: z.string().min(2, { error: 'expected a session name' }),
    external_id: optionalText('an external id'),
    sse: z.enum(['AES256', 'aws:kms'], { error: 'expected AES256 or aws:kms' }).optional(),
    kms_key_id: optionalText('a KMS key id or ARN'),
    storage_class: optionalText('an S3 storage class such as STANDARD_IA'),
    checksum_algorithm: z
      .enum(['CRC32', 'CRC32C', 'SHA1', 'SHA256', 'CRC64NVME'], {
        error: 'expected CRC32, CRC32C, SHA1, SHA256 or CRC64NVME',
      })
      .optional(),
    max_attempts: positiveInt('expected a number of attempts >= 1'),
  }),
  gcs: z.object({
    project_id: optionalText('a Google Cloud project id'),
    api_endpoint: optionalText('an endpoint URL').refine(
      (v) => v === undefined || /^https?:\/\/[^/]/.test(v),
      { error: 'expected an http:// or https:// endpoint URL' },
    ),
    impersonation_chain: optionalText('service account e-mails, comma-separated'),
    max_attempts: positiveInt('expected a number of attempts >= 1'),
  }),
  cloudwatch: z.object({
    region: optionalText('an AWS region such as eu-west-1'),
    endpoint: optionalText('an endpoint URL').refine(
      (v) => v === undefined || /^https?:\/\/[^/]/.test(v),
      { error: 'expected an http:// or https:// endpoint URL' },
    ),
    max_attempts: positiveInt('expected a number of attempts >= 1'),
  }),
  stackdriver: z.object({
    project_id: optionalText('a Google Cloud project id'),
    resource_type: z
      .string()
      .min(1, { error: 'expected a monitored resource type such as global' }),
    resource_labels: optionalText('key=value pairs separated by commas').refine(
      (v) => v === undefined || v.split(',').every((pair) => /^[^=,\s]+=[^,]*$/.test(pair.trim())),
      { error: 'expected key=value pairs separated by commas' },
    ),
    api_endpoint: optionalText('host:port or http://host:port'),
    transport: z.enum(['grpc', 'rest'], { error: 'expected grpc or rest' }),
    max_attempts: positiveInt('expected a number of attempts >= 1'),
  }),
  elasticsearch: z.object({
    log_id_template: z.string().min(1, { error: 'expected a log_id template' }),
    end_of_log_mark: z.string().min(1, { error: 'expected an end-of-log mark' }),
    message_field: z.enum(['message', 'event'], { error: 'expected message or event' }),
    host_field: z.string().min(1, { error: 'expected a field name' }),
    username: optionalText('a user name'),
    password: optionalText('a password'),
    api_key: optionalText('an API key'),
    ca_file: optionalText('a CA certificate file'),
    request_timeout_seconds: seconds,
    max_retries: z.preprocess(
      numeric,
      z
        .number({ error: 'expected a number >= 0' })
        .int()
        .min(0, { error: 'expected a number >= 0' }),
    ),
    bulk_bytes: positiveInt(BYTES),
    bulk_count: positiveInt('expected a number of documents >= 1'),
    // One document per request at worst, and JSON can make it 6x the line: 6 x 16 MiB fits
    // Elasticsearch's default http.max_content_length (100 MB).
    max_line_bytes: z.preprocess(
      numeric,
      z
        .number({ error: ES_LINE_BYTES })
        .int({ error: ES_LINE_BYTES })
        .min(1024, { error: ES_LINE_BYTES })
        .max(16 * 1024 * 1024, { error: ES_LINE_BYTES }),
    ),
    distribution: z.enum(['elasticsearch', 'opensearch'], {
      error: 'expected elasticsearch or opensearch',
    }),
  }),
  agent: z.object({
    host,
    port,
    url: optionalText('the URL the proxy reaches this agent at').refine(
      (v) => v === undefined || /^https?:\/\/[^/]/.test(v),
      { error: 'expected an http:// or https:// URL' },
    ),
    token_algorithm: z.enum(['HS256', 'HS512', 'EdDSA', 'ES256'], {
      error: 'expected HS256, HS512, EdDSA or ES256',
    }),
    token_secret: optionalText('a shared secret'),
    token_secret_file: optionalText('a file holding the shared secret'),
    token_public_key: optionalText('a public key (PEM or JWK)'),
    token_public_key_file: optionalText('a public key file'),
    token_private_key: optionalText('a private key (PEM or JWK)'),
    token_private_key_file: optionalText('a private key file'),
    tls_cert: optionalText('a PEM certificate file'),
    tls_key: optionalText('a PEM private key file'),
    idle_timeout: seconds,
    heartbeat_interval: seconds,
    heartbeat_timeout: seconds,
    shutdown_timeout: seconds,
    completion: z.enum(['marker', 'airflow-db', 'idle'], {
      error: 'expected marker, airflow-db or idle',
    }),
    airflow_db_url: optionalText("Airflow's sql_alchemy_conn URL").refine(
      (v) => v === undefined || /^(postgres(ql)?(\+[a-z0-9]+)?|sqlite):\/\//i.test(v),
      { error: "expected a postgresql:// or sqlite:// URL (Airflow's sql_alchemy_conn)" },
    ),
    airflow_secret_key: optionalText("Airflow's secret key"),
    airflow_clock_grace: seconds,
    allowed_urls: z.string({ error: 'expected origins or CIDRs separated by commas' }),
    ship_concurrency: positiveInt('expected a number of ships >= 1'),
    scan_interval: seconds,
  }),
  auth: z.object({
    mode: z.enum(['none', 'jwt', 'tokens'], { error: 'expected none, jwt or tokens' }),
    jwks_url: optionalText('a JWKS URL').refine(
      (v) => v === undefined || /^https?:\/\/[^/]/.test(v),
      { error: 'expected an http:// or https:// JWKS URL' },
    ),
    public_key: optionalText('a public key (PEM or JWK)'),
    secret: optionalText('a shared secret'),
    issuer: optionalText('an issuer'),
    audience: optionalText('an audience'),
    algorithms: z
      .string()
      .refine(
        (v) => v.split(',').every((a) => /^(HS|RS|PS|ES)(256|384|512)$|^EdDSA$/.test(a.trim())),
        {
          error: 'expected JWS algorithms separated by commas, e.g. RS256,ES256 (never none)',
        },
      ),
    clock_tolerance: seconds,
    jwks_cache: seconds,
    name_claim: z.string().min(1, { error: 'expected a claim name' }),
    dags_claim: z.string().min(1, { error: 'expected a claim name' }),
    admin_claim: z.string().min(1, { error: 'expected a claim name' }),
    tokens_file: folder('a tokens file'),
  }),
  catalog: z.object({ url: catalogUrl }),
  server: z.object({
    host,
    port,
    shutdown_timeout: seconds,
    allowed_hosts: z.string({ error: 'expected host names separated by commas' }),
    max_connections: positiveInt('expected a number of connections >= 1'),
    max_followers: positiveInt('expected a number of followers >= 1'),
    max_followers_per_attempt: positiveInt('expected a number of followers >= 1'),
    send_timeout: seconds,
  }),
  logging: z.object({ level }),
}) satisfies z.ZodType<TasklogConfig>;

/** Every configuration key as `section.key`, in the order `describeConfig` lists them. */
export const CONFIG_KEYS: readonly string[] = Object.entries(configSchema.shape).flatMap(
  ([section, schema]) => Object.keys(schema.shape).map((name) => `${section}.${name}`),
);

export const CONFIG_SECTIONS: readonly string[] = Object.keys(configSchema.shape);
