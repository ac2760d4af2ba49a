import { z } from 'zod';
import { attempts, optionalText, text } from '../../config/fields.js';
import { InvalidInputError } from '../../errors.js';
import { PathTemplate } from '../../path-template.js';
import { MAX_ENTRY_BYTES, MAX_PIECE_BYTES } from './entries.js';
import type { LogicalDateSource } from './logical-date.js';

const LABELS = 'expected key=value pairs separated by commas';

/**
 * The `[cloud_logging]` section: Google Cloud Logging (`cloud-logging://LOG_NAME`, or Airflow's
 * `stackdriver://LOG_NAME`). The only declaration of these settings and their defaults.
 * Credentials come from Application Default Credentials.
 */
export const cloudLoggingSettings = z.object({
  project_id: optionalText('a Google Cloud project id').describe(
    "Project of the log; default the credentials' (or GOOGLE_CLOUD_PROJECT).",
  ),
  resource_type: text('a monitored resource type such as global')
    .default('global')
    .describe("Monitored resource type of written entries (Airflow's default: `global`)."),
  resource_labels: z
    .union([
      z.record(z.string(), z.string()),
      optionalText(LABELS)
        .refine(
          (v) => v === undefined || v.split(',').every((p) => /^[^=,\s]+=[^,]*$/.test(p.trim())),
          { error: LABELS },
        )
        .transform((v) => (v === undefined ? undefined : parseLabels(v))),
    ])
    .describe(
      'Monitored resource labels of written entries, `key=value` pairs separated by commas.',
    ),
  api_endpoint: optionalText('host:port or http://host:port').describe(
    '`host:port` (TLS with ADC) or `http://host:port` (plaintext, no auth: emulators).',
  ),
  transport: z
    .enum(['grpc', 'rest'], { error: 'expected grpc or rest' })
    .default('grpc')
    .describe('`grpc` (the SDK default) or `rest` (HTTP/1.1 JSON).'),
  max_attempts: attempts
    .default(8)
    .describe('Tries per request, retried with exponential backoff and full jitter.'),
});

export type CloudLoggingSettings = z.output<typeof cloudLoggingSettings>;
export const cloudLoggingDefaults: CloudLoggingSettings = cloudLoggingSettings.parse({});

/** `a=1, b=2` → `{ a: '1', b: '2' }`. */
function parseLabels(text: string): Record<string, string> {
  return Object.fromEntries(
    text.split(',').map((pair) => {
      const [k, ...v] = pair.trim().split('=');
      return [k!, v.join('=')];
    }),
  );
}

export interface CloudLoggingStoreOptions {
  /**
   * The log (the `LOG_NAME` of `stackdriver://LOG_NAME`, Airflow's `gcp_log_name`, default there
   * `airflow`): letters, digits, `/ _ - .`, under 512 characters. All attempts share it; labels
   * tell them apart.
   */
  logName: string;
  /** The scheme of `url`: `cloud-logging`, or `stackdriver` as Airflow names the URL. Default `cloud-logging`. */
  scheme?: 'cloud-logging' | 'stackdriver';
  /** Google Cloud project; default Application Default Credentials' project. */
  projectId?: string;
  /** Monitored resource type of written entries; default `resource_type` of the settings. Reads do not filter on it. */
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
  /** Tries per request, the first included, with full-jitter backoff; default `max_attempts` of the settings. */
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
  /**
   * Entry bytes per WriteLogEntries call (over gRPC their exact protobuf size, over REST their
   * JSON size, which bounds it); default 5 MB, at most 9 MB.
   */
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

/** entries.write takes at most 10 MB; the batch's entry bytes stay below that with room to spare. */
const MAX_BATCH_BYTES = 9 * 1000 * 1000;
const DEFAULT_BATCH_BYTES = 5 * 1000 * 1000;
const DEFAULT_BATCH_ENTRIES = 1000;
const MAX_RESOURCE_LABEL_BYTES = 4 * 1024;
const LOG_NAME = /^[A-Za-z0-9/_\-.]{1,511}$/;

export type ResolvedCloudLoggingOptions = Required<
  Omit<
    CloudLoggingStoreOptions,
    'projectId' | 'resourceType' | 'resourceLabels' | 'apiEndpoint' | 'airflowDb'
  >
> &
  Pick<CloudLoggingStoreOptions, 'projectId' | 'apiEndpoint' | 'airflowDb'> & {
    /** The monitored resource of written entries. */
    resource: { type: string; labels: Record<string, string> };
  };

/** Every option checked and defaulted. Throws InvalidInputError naming the option. */
export function resolveCloudLoggingOptions(
  options: CloudLoggingStoreOptions,
): ResolvedCloudLoggingOptions {
  if (typeof options.logName !== 'string' || !LOG_NAME.test(options.logName)) {
    throw new InvalidInputError(
      `Cloud Logging log name must be 1-511 letters, digits, "/", "_", "-" or ".", got ${JSON.stringify(options.logName)}`,
    );
  }
  const int = (name: string, v: number | undefined, def: number, min: number, max: number) => {
    const n = v ?? def;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidInputError(
        `Cloud Logging ${name} must be an integer ${min}-${max}, got ${v}`,
      );
    }
    return n;
  };
  const maxPieceBytes = int(
    'maxPieceBytes',
    options.maxPieceBytes,
    MAX_PIECE_BYTES,
    4,
    MAX_PIECE_BYTES,
  );
  const maxBatchEntries = int(
    'maxBatchEntries',
    options.maxBatchEntries,
    DEFAULT_BATCH_ENTRIES,
    1,
    100_000,
  );
  const maxBatchBytes = int(
    'maxBatchBytes',
    options.maxBatchBytes,
    DEFAULT_BATCH_BYTES,
    MAX_ENTRY_BYTES,
    MAX_BATCH_BYTES,
  );
  const pageSize = int('pageSize', options.pageSize, 1000, 1, 1000);
  const maxAttempts = int(
    'maxAttempts',
    options.maxAttempts,
    cloudLoggingDefaults.max_attempts,
    1,
    100,
  );
  const labels = options.resourceLabels ?? {};
  if (Buffer.byteLength(JSON.stringify(labels)) > MAX_RESOURCE_LABEL_BYTES) {
    throw new InvalidInputError(`Cloud Logging resource labels must stay under 4 KiB`);
  }
  if (
    options.transport !== undefined &&
    options.transport !== 'grpc' &&
    options.transport !== 'rest'
  ) {
    throw new InvalidInputError(
      `Cloud Logging transport must be "grpc" or "rest", got ${options.transport}`,
    );
  }
  return {
    logName: options.logName,
    scheme: options.scheme ?? 'cloud-logging',
    projectId: options.projectId,
    resource: {
      type: options.resourceType ?? cloudLoggingDefaults.resource_type,
      labels: { ...labels },
    },
    apiEndpoint: options.apiEndpoint,
    transport: options.transport ?? cloudLoggingDefaults.transport,
    maxAttempts,
    maxRetryDelayMs: options.maxRetryDelayMs ?? 20_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
    maxPieceBytes,
    maxBatchEntries,
    maxBatchBytes,
    pageSize,
    pathTemplate: options.pathTemplate ?? new PathTemplate(),
    now: options.now ?? Date.now,
    airflowDb: options.airflowDb,
    warn: options.warn ?? ((message) => process.emitWarning(message, 'TasklogWarning')),
  };
}
