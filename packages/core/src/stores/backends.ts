import type { z } from 'zod';
import type { LogStore } from '../store.js';
import { cloudLoggingSettings } from './cloud-logging/settings.js';
import { cloudwatchSettings } from './cloudwatch/settings.js';
import { elasticsearchSettings } from './elasticsearch/settings.js';
import { gcsSettings } from './gcs/settings.js';
import type { OpenStoreOptions } from './registry.js';
import { s3Settings } from './s3/settings.js';

/**
 * One remote log backend as the registry knows it: its name (the folder `stores/<name>/`, the
 * subpath `@tasklog/core/stores/<name>`), the URL schemes that select it, its config section and
 * settings (zod, SDK-free, so the config schema is built without loading any SDK), the SDK
 * packages it needs, and a lazy opener that imports the backend only when it is used.
 */
export interface Backend {
  readonly name: string;
  /** Without the `:`. The first is the one `url` uses by default. */
  readonly schemes: readonly string[];
  /** Its `[section]` in the config file, when it has settings. */
  readonly section?: string;
  readonly settings?: z.ZodObject;
  /** What `npm i` needs for it (optional peer dependencies of @tasklog/core). */
  readonly packages: readonly string[];
  open(url: string, options: OpenStoreOptions): Promise<LogStore>;
}

export const BACKENDS = [
  {
    name: 'local',
    schemes: ['file'],
    packages: [],
    open: async (url, o) =>
      (await import('./local/store.js')).LocalStore.fromUrl(url, {
        pathTemplate: o.pathTemplate,
        chunkSize: o.flushBytes,
      }),
  },
  {
    name: 's3',
    schemes: ['s3'],
    section: 's3',
    settings: s3Settings,
    packages: ['@aws-sdk/client-s3', '@aws-sdk/credential-providers'],
    open: async (url, o) => (await import('./s3/store.js')).S3Store.fromUrl(url, o),
  },
  {
    name: 'gcs',
    schemes: ['gs'],
    section: 'gcs',
    settings: gcsSettings,
    packages: ['@google-cloud/storage', 'google-auth-library'],
    open: async (url, o) => (await import('./gcs/store.js')).GcsStore.fromUrl(url, o),
  },
  {
    name: 'cloudwatch',
    schemes: ['cloudwatch'],
    section: 'cloudwatch',
    settings: cloudwatchSettings,
    packages: ['@aws-sdk/client-cloudwatch-logs'],
    open: async (url, o) => (await import('./cloudwatch/store.js')).CloudWatchStore.fromUrl(url, o),
  },
  {
    name: 'elasticsearch',
    schemes: ['elasticsearch+https', 'elasticsearch+http'],
    section: 'elasticsearch',
    settings: elasticsearchSettings,
    packages: ['@elastic/elasticsearch'],
    open: async (url, o) =>
      (await import('./elasticsearch/store.js')).ElasticsearchStore.fromUrl(url, o),
  },
  {
    name: 'cloud-logging',
    // `stackdriver://` is how Airflow names it (`remote_base_log_folder`).
    schemes: ['cloud-logging', 'stackdriver'],
    section: 'cloud_logging',
    settings: cloudLoggingSettings,
    packages: ['@google-cloud/logging', 'google-auth-library'],
    open: async (url, o) =>
      (await import('./cloud-logging/store.js')).CloudLoggingStore.fromUrl(url, o),
  },
] as const satisfies readonly Backend[];

/** Every store URL scheme with its `:`, in the registry's order. */
export const STORE_SCHEMES: readonly string[] = BACKENDS.flatMap((b) =>
  b.schemes.map((s) => `${s}:`),
);

/** The backend a URL's scheme selects, if any. */
export function backendOf(url: string): Backend | undefined {
  // Not `new URL()`: a CloudWatch ARN (`arn:aws:logs:...`) is not a valid URL authority.
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
  return BACKENDS.find((b) => (b.schemes as readonly string[]).includes(scheme ?? ''));
}
