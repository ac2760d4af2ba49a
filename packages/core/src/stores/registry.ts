import type { TasklogConfig } from '../config/types.js';
import { InvalidInputError } from '../errors.js';
import type { PathTemplate } from '../path-template.js';
import type { LogStore } from '../store.js';
import { BACKENDS, backendOf, STORE_SCHEMES } from './backends.js';
import type { CloudLoggingSettings } from './cloud-logging/settings.js';
import type { CloudWatchSettings } from './cloudwatch/settings.js';
import type { ElasticsearchSettings } from './elasticsearch/settings.js';
import type { GcsSettings } from './gcs/settings.js';
import type { S3Settings } from './s3/settings.js';

/** The settings of each backend, by config section; a missing key takes its default. */
export interface BackendSettings {
  s3?: Partial<S3Settings>;
  gcs?: Partial<GcsSettings>;
  cloudwatch?: Partial<CloudWatchSettings>;
  elasticsearch?: Partial<ElasticsearchSettings>;
  cloud_logging?: Partial<CloudLoggingSettings>;
}

export interface OpenStoreOptions extends BackendSettings {
  /** Where each attempt's log lives below the store's root; default Airflow's layout. */
  pathTemplate?: PathTemplate;
  /** `gzip`: finished logs are stored compressed (blob stores). Default `none`. */
  compression?: 'none' | 'gzip';
  /** Buffered bytes at which a writer flushes a chunk by itself. Default `store.flush_bytes`. */
  flushBytes?: number;
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
  const sections = Object.fromEntries(
    BACKENDS.flatMap((b) => ('section' in b ? [[b.section, config[b.section]]] : [])),
  ) as BackendSettings;
  return {
    ...sections,
    pathTemplate,
    compression: config.store.compression,
    flushBytes: config.store.flush_bytes,
    airflowDbUrl: config.agent.airflow_db_url,
  };
}

/**
 * Opens the store a URL names, like Airflow's `remote_base_log_folder`: `file:///var/log/archive`,
 * `s3://bucket/prefix`, `gs://bucket/prefix`, `cloudwatch://arn:...`,
 * `elasticsearch+https://host/INDEX`, `cloud-logging://LOG_NAME` (or Airflow's
 * `stackdriver://LOG_NAME`). Only the chosen backend is imported.
 *
 * @throws InvalidInputError for an unknown scheme and for a URL the chosen store rejects;
 *   BackendUnavailableError (on first use) when the backend's SDK is not installed, naming it.
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<LogStore> {
  const backend = backendOf(url);
  if (backend === undefined) {
    const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
    const got = scheme === undefined ? 'a URL without a scheme' : `scheme "${scheme}:"`;
    throw new InvalidInputError(
      `unknown store URL: got ${got}; supported schemes are ${STORE_SCHEMES.join(', ')}`,
    );
  }
  return backend.open(url, options);
}
