import type { TasklogConfig } from '../config/types.js';
import { InvalidInputError } from '../errors.js';
import type { PathTemplate } from '../path-template.js';
import type { LogStore } from '../store.js';

export interface OpenStoreOptions {
  /** Where each attempt's log lives below the store's root; default Airflow's layout. */
  pathTemplate?: PathTemplate;
  /** `gzip`: finished logs are stored compressed (blob stores). Default `none`. */
  compression?: 'none' | 'gzip';
  /** Buffered bytes at which a writer flushes a chunk by itself. Default 8 MiB. */
  flushBytes?: number;
  /** S3 settings (the `[s3]` config section). */
  s3?: Partial<TasklogConfig['s3']>;
  /** GCS settings (the `[gcs]` config section). */
  gcs?: Partial<TasklogConfig['gcs']>;
  /** CloudWatch Logs settings (the `[cloudwatch]` config section). */
  cloudwatch?: Partial<TasklogConfig['cloudwatch']>;
  /** Elasticsearch settings (the `[elasticsearch]` config section). */
  elasticsearch?: Partial<TasklogConfig['elasticsearch']>;
  /** Cloud Logging settings (the `[stackdriver]` section; labels already parsed). */
  stackdriver?: Partial<Omit<TasklogConfig['stackdriver'], 'resource_labels'>> & {
    resource_labels?: Record<string, string>;
  };
  /**
   * Airflow's metadata database (`agent.airflow_db_url`): Cloud Logging labels entries with
   * their run's logical date, which only it knows for runs whose id holds none.
   */
  airflowDbUrl?: string;
}

/** The store options a loaded configuration asks for. */
export function storeOptionsFromConfig(
  config: TasklogConfig,
  pathTemplate: PathTemplate,
): OpenStoreOptions {
  return {
    pathTemplate,
    compression: config.store.compression,
    flushBytes: config.store.flush_bytes,
    s3: config.s3,
    gcs: config.gcs,
    cloudwatch: config.cloudwatch,
    elasticsearch: config.elasticsearch,
    stackdriver: {
      ...config.stackdriver,
      resource_labels: parseLabels(config.stackdriver.resource_labels),
    },
    airflowDbUrl: config.agent.airflow_db_url,
  };
}

/** `a=1, b=2` → `{ a: '1', b: '2' }` (validated by the config schema). */
function parseLabels(text: string | undefined): Record<string, string> | undefined {
  if (text === undefined) return undefined;
  return Object.fromEntries(
    text.split(',').map((pair) => {
      const [k, ...v] = pair.trim().split('=');
      return [k!, v.join('=')];
    }),
  );
}

type Opener = (url: string, options: OpenStoreOptions) => Promise<LogStore>;

// Each backend is imported only when its scheme is used, so reading from a local folder does
// not load five cloud SDKs.
const OPENERS: Record<string, Opener> = {
  file: async (url, options) =>
    (await import('./local/store.js')).LocalStore.fromUrl(url, {
      pathTemplate: options.pathTemplate,
      chunkSize: options.flushBytes,
    }),
  s3: async (url, options) => (await import('./s3/store.js')).S3Store.fromUrl(url, options),
  gs: async (url, options) => (await import('./gcs/store.js')).GcsStore.fromUrl(url, options),
  cloudwatch: async (url, options) =>
    (await import('./cloudwatch/store.js')).CloudWatchStore.fromUrl(url, options),
  'elasticsearch+http': openElasticsearch,
  'elasticsearch+https': openElasticsearch,
  stackdriver: async (url, options) =>
    (await import('./cloud-logging/store.js')).CloudLoggingStore.fromUrl(url, options),
};

async function openElasticsearch(url: string, options: OpenStoreOptions): Promise<LogStore> {
  return (await import('./elasticsearch/store.js')).ElasticsearchStore.fromUrl(url, options);
}

/**
 * Opens the store a URL names, like Airflow's `remote_base_log_folder`: `file:///var/log/archive`,
 * `s3://bucket/prefix`, `gs://bucket/prefix`, `cloudwatch://arn:...`, `elasticsearch+https://host/INDEX`,
 * `stackdriver://LOG_NAME`. Throws InvalidInputError for an unknown scheme and for a URL the
 * chosen store rejects.
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<LogStore> {
  // Not `new URL()`: a CloudWatch ARN (`arn:aws:logs:...`) is not a valid URL authority.
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url);
  const scheme = m?.[1]?.toLowerCase();
  if (scheme === undefined || !Object.hasOwn(OPENERS, scheme)) {
    const got = scheme === undefined ? 'a URL without a scheme' : `scheme "${scheme}:"`;
    throw new InvalidInputError(
      `unknown store URL: got ${got}; supported schemes are ${Object.keys(OPENERS)
        .map((s) => `${s}:`)
        .join(', ')}`,
    );
  }
  return OPENERS[scheme]!(url, options);
}
