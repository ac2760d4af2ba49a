import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { InvalidInputError } from '../errors.js';
import { AIRFLOW_PATH_TEMPLATE, PathTemplate } from '../path-template.js';
import { BACKENDS, STORE_SCHEMES } from '../stores/backends.js';
import { DEFAULT_FLUSH_BYTES } from '../stores/shared/chunk-buffer.js';
import {
  bool,
  httpUrl,
  integer,
  MESSAGE_QUOTES_VALUE,
  optionalText,
  port,
  seconds,
  text,
} from './fields.js';

/**
 * The whole configuration, declared once: each key's type, check, default and meaning. The
 * backends' sections come from the store registry (`stores/<backend>/settings.ts`). Keys whose
 * default is a folder under `TASKLOG_HOME` have theirs in defaults.ts. Input values may be
 * strings (environment, flags) and are coerced; relative folders are kept as given, because the
 * folder they are relative to depends on where each value came from (the loader resolves them).
 */

export { MESSAGE_QUOTES_VALUE };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const folder = (what: string) => text(`${what} (a non-empty path)`);

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
  if (!scheme || !STORE_SCHEMES.includes(scheme)) return fail(STORE_EXPECTED);
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

const host = text('a host name or IP address to listen on');
const claim = text('a claim name');

const level = z.preprocess(
  (v) => (typeof v === 'string' ? v.trim().toLowerCase() : v),
  z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` }),
);

const core = z.object({
  base_log_folder: folder('a log folder').describe(
    "Folder under which workers write attempt logs (Airflow's `base_log_folder`).",
  ),
  path_template: pathTemplate
    .default(AIRFLOW_PATH_TEMPLATE)
    .describe(
      "Path template relative to base_log_folder and the store prefix (Airflow's layout by default).",
    ),
  delete_local_copy: bool
    .default(false)
    .describe("Remove the worker's copy after the archive copy is verified."),
  state_folder: folder('a state folder').describe("Folder for the shipper's journals."),
  sensitive_names: z
    .string({ error: 'expected names separated by commas' })
    .default('')
    .describe(
      "Names (comma-separated) that mark an environment variable as secret, besides Airflow's list.",
    ),
  umask: z
    .string({ error: 'expected an octal file mode mask such as 027' })
    .regex(/^0?[0-7]{3}$/, { error: 'expected an octal file mode mask such as 027' })
    .default('027')
    .describe(
      "File mode mask of the CLI's processes (octal): `027` creates files 0640, folders 0750.",
    ),
});

const store = z.object({
  url: storeUrl.describe(
    'Archive URL: `file:///abs/path`, `s3://bucket/prefix`, `gs://bucket/prefix`, `cloudwatch://ARN`, `elasticsearch+https://host/INDEX`, `cloud-logging://LOG_NAME`.',
  ),
  compression: z
    .enum(['none', 'gzip'], { error: 'expected "none" or "gzip"' })
    .default('none')
    .describe('`gzip` stores finished logs compressed (blob stores); offsets stay uncompressed.'),
  flush_interval: seconds
    .default(5)
    .describe("Seconds between flushes of a running attempt's new bytes to the store."),
  flush_bytes: integer('expected a number of bytes >= 1')
    .default(DEFAULT_FLUSH_BYTES)
    .describe("Buffered bytes at which a running attempt's writer flushes a chunk."),
  read_urls: z
    .string({ error: 'expected store URLs separated by commas' })
    .default('')
    .describe(
      'Other archives the proxy may read, comma-separated store URLs (archives being migrated).',
    ),
  retry_max_interval: seconds
    .default(10)
    .describe('Longest wait in seconds between two tries while the store is unavailable.'),
  finish_grace: seconds
    .default(30)
    .describe('Seconds `tasklog run` keeps trying to archive a finished attempt before it exits.'),
});

const agent = z.object({
  host: host.default('127.0.0.1').describe('Where `tasklog agent` listens.'),
  port: port.default(8795).describe('Port of `tasklog agent`.'),
  metrics_port: port
    .optional()
    .describe(
      'Serve `/metrics` on this port of `agent.host` instead of the agent port (0 for any); unset: on the agent port.',
    ),
  url: httpUrl('URL').describe('URL the proxy reaches this agent at; default the bound URL.'),
  token_algorithm: z
    .enum(['HS256', 'HS512', 'EdDSA', 'ES256'], { error: 'expected HS256, HS512, EdDSA or ES256' })
    .default('HS512')
    .describe("Algorithm of the proxy's tokens to agents."),
  token_secret: optionalText('a shared secret').describe(
    'Shared secret (HS256: ≥ 32 bytes, HS512: ≥ 64 bytes); give it as `token_secret_cmd`.',
  ),
  token_secret_file: optionalText('a file holding the shared secret').describe(
    'File holding the shared secret.',
  ),
  token_public_key: optionalText('a public key (PEM or JWK)').describe(
    "Public key (PEM or JWK) the proxy's tokens are verified with (EdDSA, ES256).",
  ),
  token_public_key_file: optionalText('a public key file').describe('File of `token_public_key`.'),
  token_private_key: optionalText('a private key (PEM or JWK)').describe(
    'Private key (PEM or JWK) the proxy signs tokens with (EdDSA, ES256); agents never hold it.',
  ),
  token_private_key_file: optionalText('a private key file').describe(
    'File of `token_private_key`.',
  ),
  tls_cert: optionalText('a PEM certificate file').describe('TLS certificate of the agent.'),
  tls_key: optionalText('a PEM private key file').describe('TLS key of the agent.'),
  idle_timeout: seconds
    .default(3600)
    .describe(
      'Seconds without growth (and without a completion marker) before an attempt is abandoned.',
    ),
  heartbeat_interval: seconds.default(30).describe("Seconds between a writer's heartbeats."),
  heartbeat_timeout: seconds
    .default(90)
    .describe(
      "Seconds without a heartbeat after which the proxy counts an attempt's writer as lost.",
    ),
  shutdown_timeout: seconds.default(10).describe('Seconds the agent drains for on SIGTERM.'),
  completion: z
    .enum(['marker', 'airflow-db', 'idle'], { error: 'expected marker, airflow-db or idle' })
    .default('marker')
    .describe('How the agent knows that an attempt without a completion marker has finished.'),
  airflow_db_url: optionalText("Airflow's sql_alchemy_conn URL")
    .refine((v) => v === undefined || /^(postgres(ql)?(\+[a-z0-9]+)?|sqlite):\/\//i.test(v), {
      error: "expected a postgresql:// or sqlite:// URL (Airflow's sql_alchemy_conn)",
    })
    .describe("Airflow's `sql_alchemy_conn` (PostgreSQL or SQLite), read only."),
  airflow_secret_key: optionalText("Airflow's secret key").describe(
    "Airflow's `[api] secret_key` (`[webserver] secret_key` in 2.x): answer Airflow's log-server requests.",
  ),
  airflow_clock_grace: seconds
    .default(30)
    .describe("Seconds of clock skew allowed on Airflow's tokens."),
  allowed_urls: z
    .string({ error: 'expected origins or CIDRs separated by commas' })
    .default('')
    .describe('Agent URLs the proxy may reach, comma-separated origins or CIDRs; empty: any.'),
  ship_concurrency: integer('expected a number of ships >= 1')
    .default(4)
    .describe("Finished logs shipped at once by the agent's sweep."),
  scan_interval: seconds
    .default(2)
    .describe(
      'Seconds between full scans of the base folder (the safety net behind folder watches).',
    ),
});

const auth = z.object({
  mode: z
    .enum(['none', 'jwt', 'tokens'], { error: 'expected none, jwt or tokens' })
    .default('none')
    .describe(
      '`jwt` (OIDC bearer tokens), `tokens` (static API tokens) or `none` (loopback only).',
    ),
  jwks_url: httpUrl('JWKS URL').describe("The OIDC provider's JWKS endpoint."),
  public_key: optionalText('a public key (PEM or JWK)').describe(
    'Instead of `jwks_url`: a public key (PEM or JWK).',
  ),
  secret: optionalText('a shared secret').describe(
    'Instead of `jwks_url`: a shared secret for HS256/HS384/HS512.',
  ),
  issuer: optionalText('an issuer').describe('Required `iss`.'),
  audience: optionalText('an audience').describe('Required `aud`.'),
  algorithms: z
    .string()
    .refine(
      (v) => v.split(',').every((a) => /^(HS|RS|PS|ES)(256|384|512)$|^EdDSA$/.test(a.trim())),
      { error: 'expected JWS algorithms separated by commas, e.g. RS256,ES256 (never none)' },
    )
    .default('RS256,ES256,EdDSA')
    .describe('Accepted signature algorithms, comma-separated.'),
  clock_tolerance: seconds.default(30).describe('Seconds of clock skew allowed on `exp`/`nbf`.'),
  jwks_cache: seconds
    .default(300)
    .describe('Seconds fetched JWKS keys are trusted before they are fetched again.'),
  name_claim: claim.default('sub').describe('Claim naming the principal.'),
  dags_claim: claim
    .default('tasklog_dags')
    .describe('Claim with the DAG id patterns a principal may read.'),
  admin_claim: claim
    .default('tasklog_admin')
    .describe('Claim that is `true` for principals with the admin grant.'),
  tokens_file: folder('a tokens file').describe(
    "Where `tasklog token create` keeps the API tokens' digests.",
  ),
});

const server = z.object({
  host: host.default('127.0.0.1').describe('Where `tasklog serve` listens.'),
  port: port.default(8794).describe('Port of `tasklog serve`.'),
  shutdown_timeout: seconds
    .default(10)
    .describe('Seconds in-flight requests get to finish on SIGTERM before they are closed.'),
  allowed_hosts: z
    .string({ error: 'expected host names separated by commas' })
    .default('')
    .describe(
      'Host names the proxy answers to, comma-separated; empty: loopback names on loopback, else any.',
    ),
  max_connections: integer('expected a number of connections >= 1')
    .default(10_000)
    .describe('Open connections at most; more are refused.'),
  max_followers: integer('expected a number of followers >= 1')
    .default(5_000)
    .describe('Followers of running logs at once.'),
  max_followers_per_attempt: integer('expected a number of followers >= 1')
    .default(1_000)
    .describe('Followers of one running log at once.'),
  send_timeout: seconds
    .default(30)
    .describe('Seconds a client may take no byte of its response before it is cut off.'),
  search_time_limit: seconds
    .default(10)
    .describe(
      'Seconds one log search may run; past it the search answers what it found and where to resume.',
    ),
  ui: bool.default(true).describe('Serve the log viewer at `/`; `false` leaves the API only.'),
});

const retention = z.object({
  keep_days: integer('expected a number of days >= 1')
    .optional()
    .describe(
      '`tasklog serve` deletes finished attempts last changed more than this many days ago (as `tasklog prune`); unset: never.',
    ),
  interval: seconds
    .refine((v) => v > 0, { error: 'expected a number of seconds > 0' })
    .default(3600)
    .describe('Seconds between two retention runs of `tasklog serve` (the first runs at start).'),
});

const backendSections = Object.fromEntries(
  BACKENDS.flatMap((b) => ('section' in b ? [[b.section, b.settings]] : [])),
) as {
  [B in (typeof BACKENDS)[number] as B extends { section: string }
    ? B['section']
    : never]: B extends {
    settings: infer S;
  }
    ? S
    : never;
};

export const configSchema = z.object({
  core,
  store,
  ...backendSections,
  agent,
  auth,
  catalog: z.object({
    url: catalogUrl.describe(
      '`sqlite:///abs/path.db` or `postgres://user@host:5432/db` (give a password with `url_cmd`).',
    ),
  }),
  server,
  retention,
  logging: z.object({ level: level.default('info').describe('`trace` … `fatal`, `silent`.') }),
});

/** Every configuration key as `section.key`, in the order `describeConfig` lists them. */
export const CONFIG_KEYS: readonly string[] = Object.entries(configSchema.shape).flatMap(
  ([section, schema]) => Object.keys(schema.shape).map((name) => `${section}.${name}`),
);

export const CONFIG_SECTIONS: readonly string[] = Object.keys(configSchema.shape);
