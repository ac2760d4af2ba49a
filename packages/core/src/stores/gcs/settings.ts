import { z } from 'zod';
import { attempts, httpUrl, optionalText } from '../../config/fields.js';
import { InvalidInputError } from '../../errors.js';
import {
  type BlobStoreOptions,
  type BucketRule,
  checkInteger,
  resolveBlobOptions,
} from '../shared/blob-options.js';

/**
 * The `[gcs]` section: Google Cloud Storage. The only declaration of these settings and their
 * defaults. Credentials come from Application Default Credentials only.
 */
export const gcsSettings = z.object({
  project_id: optionalText('a Google Cloud project id').describe(
    "Project of the bucket; default the credentials'.",
  ),
  api_endpoint: httpUrl('endpoint URL').describe(
    'Override of `https://storage.googleapis.com`, e.g. for an emulator.',
  ),
  impersonation_chain: optionalText('service account e-mails, comma-separated').describe(
    'Service accounts to impersonate, comma-separated, the last one acting.',
  ),
  max_attempts: attempts
    .default(8)
    .describe('Tries per request, retried with exponential backoff.'),
});

export type GcsSettings = z.output<typeof gcsSettings>;
export const gcsDefaults: GcsSettings = gcsSettings.parse({});

export interface GcsStoreOptions extends BlobStoreOptions {
  /** Google Cloud project; default from Application Default Credentials. */
  projectId?: string;
  /** Override of `https://storage.googleapis.com`, e.g. an emulator. */
  apiEndpoint?: string;
  /** Service accounts to impersonate on top of ADC, the last one acting; default none. */
  impersonationChain?: readonly string[];
  /** Attempts per request (the SDK retries with exponential backoff); default `max_attempts` of the settings. */
  maxAttempts?: number;
  /**
   * Longest wait between two retries, in seconds, at least 1 (the SDK's uploads always wait
   * 1 s before their first retry and reject a smaller cap); default the SDK's 64.
   */
  maxRetryDelaySeconds?: number;
  /** Bytes per request of a resumable upload, a multiple of 256 KiB; default 8 MiB. */
  uploadChunkSize?: number;
}

/** Options without a default of the store's own: unset means the SDK's or the credentials'. */
type SdkDefaulted = 'projectId' | 'apiEndpoint' | 'impersonationChain' | 'maxRetryDelaySeconds';

/** Every option checked, and defaulted where the store has a default of its own. */
export type ResolvedGcsOptions = Required<Omit<GcsStoreOptions, SdkDefaulted>> &
  Pick<GcsStoreOptions, SdkDefaulted>;

const MIB = 1024 * 1024;
const DEFAULT_UPLOAD_CHUNK_SIZE = 8 * MIB;
/** Resumable upload requests must carry a multiple of 256 KiB (all but the last). */
const UPLOAD_CHUNK_QUANTUM = 256 * 1024;
const BUCKET: BucketRule = {
  service: 'GCS',
  pattern: /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/,
  description: '3-222 characters of a-z, 0-9, ".", "_" and "-"',
};

/** Checks every option and fills in the defaults. Throws InvalidInputError naming the option. */
export function resolveGcsOptions(options: GcsStoreOptions): ResolvedGcsOptions {
  const blob = resolveBlobOptions(options, BUCKET);
  const uploadChunkSize = checkInteger(
    'GCS',
    'uploadChunkSize',
    options.uploadChunkSize ?? DEFAULT_UPLOAD_CHUNK_SIZE,
  );
  if (uploadChunkSize % UPLOAD_CHUNK_QUANTUM !== 0) {
    throw new InvalidInputError(
      `GCS uploadChunkSize must be a multiple of 256 KiB, got ${uploadChunkSize}`,
    );
  }
  const maxAttempts = checkInteger(
    'GCS',
    'maxAttempts',
    options.maxAttempts ?? gcsDefaults.max_attempts,
  );
  const maxDelay = options.maxRetryDelaySeconds;
  if (maxDelay !== undefined && !(Number.isFinite(maxDelay) && maxDelay >= 1)) {
    throw new InvalidInputError(`GCS maxRetryDelaySeconds must be >= 1, got ${maxDelay}`);
  }
  return {
    ...blob,
    projectId: options.projectId,
    apiEndpoint: options.apiEndpoint,
    impersonationChain: options.impersonationChain,
    maxAttempts,
    maxRetryDelaySeconds: maxDelay,
    uploadChunkSize,
  };
}
