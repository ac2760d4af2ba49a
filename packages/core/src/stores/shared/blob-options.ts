import { InvalidInputError } from '../../errors.js';
import { PathTemplate } from '../../path-template.js';
import { DEFAULT_FLUSH_BYTES } from './chunk-buffer.js';

// What the blob stores (S3, GCS) have in common: a bucket, a key prefix, the layout below it, and
// how their writers flush. Each store adds its own options and its bucket naming rule.

/** Objects per list request the services allow at most (and the default). */
export const MAX_LIST_PAGE_SIZE = 1000;

/** The options every blob store has. */
export interface BlobStoreOptions {
  /** The bucket; it must exist (tasklog never creates buckets). */
  bucket: string;
  /**
   * Key prefix without leading or trailing `/` (the path of Airflow's `remote_base_log_folder`);
   * a log's key is `prefix/<relative path>`, or just the relative path when empty. Default ''.
   */
  prefix?: string;
  /** Where each attempt's log lives below the prefix; default Airflow's layout. */
  pathTemplate?: PathTemplate;
  /**
   * `gzip`: finished logs are stored gzip-encoded (`Content-Encoding: gzip`). Offsets still
   * count uncompressed bytes, but a read from offset N then downloads and inflates the first N
   * bytes too: O(N) instead of O(1) to start. Running attempts' chunks are never compressed.
   * Default `none`.
   */
  compression?: 'none' | 'gzip';
  /** Buffered bytes at which a writer uploads a chunk by itself. Default 8 MiB. */
  flushBytes?: number;
  /** Keys per list request, 1–1000. Default 1000 (the services' maximum). */
  listPageSize?: number;
}

/** How a blob service names its buckets. */
export interface BucketRule {
  /** `S3`, `GCS`: how errors name the service. */
  service: string;
  pattern: RegExp;
  /** The rule in words, for the error. */
  description: string;
}

/** BlobStoreOptions checked and defaulted. Throws InvalidInputError naming the option. */
export function resolveBlobOptions(
  options: BlobStoreOptions,
  bucket: BucketRule,
): Required<BlobStoreOptions> {
  const { service } = bucket;
  if (typeof options.bucket !== 'string' || !bucket.pattern.test(options.bucket)) {
    throw new InvalidInputError(
      `${service} bucket name must be ${bucket.description}, got ${JSON.stringify(options.bucket)}`,
    );
  }
  const prefix = options.prefix ?? '';
  if (
    prefix !== '' &&
    (prefix.split('/').some((s) => s === '' || s === '.' || s === '..') ||
      /[\u0000-\u001f\u007f\\]/.test(prefix))
  ) {
    throw new InvalidInputError(
      `${service} key prefix must be "/"-separated names without empty, "." or ".." segments or control characters, got ${JSON.stringify(prefix)}`,
    );
  }
  return {
    bucket: options.bucket,
    prefix,
    pathTemplate: options.pathTemplate ?? new PathTemplate(),
    compression: options.compression ?? 'none',
    flushBytes: checkInteger(service, 'flushBytes', options.flushBytes ?? DEFAULT_FLUSH_BYTES),
    listPageSize: checkInteger(
      service,
      'listPageSize',
      options.listPageSize ?? MAX_LIST_PAGE_SIZE,
      MAX_LIST_PAGE_SIZE,
    ),
  };
}

/** `value` if it is an integer from 1 to `max`, else InvalidInputError naming the option. */
export function checkInteger(
  service: string,
  name: string,
  value: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new InvalidInputError(
      `${service} ${name} must be an integer from 1 to ${max}, got ${value}`,
    );
  }
  return value;
}
