import { z } from 'zod';
import { attempts, bool, httpUrl, optionalText } from '../../config/fields.js';
import { InvalidInputError } from '../../errors.js';
import {
  type BlobStoreOptions,
  type BucketRule,
  resolveBlobOptions,
} from '../shared/blob-options.js';
import { MIN_PART_SIZE } from './limits.js';

// The S3 store's settings: the `[s3]` config section, and the options of an S3Store (the config
// section among them), each declared here once with its default.

/**
 * The `[s3]` section: S3 and S3-compatible stores. The only declaration of these settings and
 * their defaults. Credentials come from the AWS SDK's default chain only.
 */
export const s3Settings = z.object({
  region: optionalText('an AWS region such as eu-west-1').describe(
    "The bucket's region; default the SDK's (AWS_REGION, the profile).",
  ),
  endpoint: httpUrl('endpoint URL').describe(
    'For S3-compatible stores (MinIO, Ceph, R2): `https://minio.example:9000`.',
  ),
  force_path_style: bool
    .default(false)
    .describe('Path-style URLs (`endpoint/bucket/key`), for S3-compatible stores.'),
  role_arn: optionalText('a role ARN such as arn:aws:iam::123456789012:role/tasklog').describe(
    'Role to assume (STS AssumeRole) on top of the default credentials.',
  ),
  role_session_name: z
    .string()
    .min(2, { error: 'expected a session name' })
    .default('tasklog')
    .describe('Session name of the assumed role.'),
  external_id: optionalText('an external id').describe('External id of the assumed role.'),
  sse: z
    .enum(['AES256', 'aws:kms'], { error: 'expected AES256 or aws:kms' })
    .optional()
    .describe('Server-side encryption: `AES256` or `aws:kms`.'),
  kms_key_id: optionalText('a KMS key id or ARN').describe('KMS key of `sse = "aws:kms"`.'),
  storage_class: optionalText('an S3 storage class such as STANDARD_IA').describe(
    'Storage class of finished logs.',
  ),
  checksum_algorithm: z
    .enum(['CRC32', 'CRC32C', 'SHA1', 'SHA256', 'CRC64NVME'], {
      error: 'expected CRC32, CRC32C, SHA1, SHA256 or CRC64NVME',
    })
    .optional()
    .describe('Additional checksum sent with uploads: CRC32, CRC32C, SHA1, SHA256, CRC64NVME.'),
  max_attempts: attempts
    .default(8)
    .describe('Tries per request, retried with exponential backoff and full jitter.'),
});

export type S3Settings = z.output<typeof s3Settings>;
export const s3Defaults: S3Settings = s3Settings.parse({});

export interface S3StoreOptions extends BlobStoreOptions {
  /** The `[s3]` config section: region, endpoint, role, SSE, storage class, checksum, retries. */
  s3?: Partial<S3Settings>;
  /**
   * Part size of the multipart uploads that store finished logs, at least 5 MiB; raised to fit
   * S3's 10,000 parts. A log (or compressed log) of at most one part is one PutObject. Default 8 MiB.
   */
  partSize?: number;
}

/** Every option checked, and defaulted where the store has a default of its own. */
export type ResolvedS3Options = Required<S3StoreOptions>;

const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
const BUCKET: BucketRule = {
  service: 'S3',
  pattern: /^[a-zA-Z0-9][a-zA-Z0-9._-]{2,254}$/,
  description: '3-255 letters, digits, ".", "-" or "_"',
};

/** Checks every option and fills in the defaults. Throws InvalidInputError naming the option. */
export function resolveS3Options(options: S3StoreOptions): ResolvedS3Options {
  const blob = resolveBlobOptions(options, BUCKET);
  const partSize = options.partSize;
  if (partSize !== undefined && (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE)) {
    throw new InvalidInputError(`S3 partSize must be an integer >= 5 MiB, got ${partSize}`);
  }
  return {
    ...blob,
    s3: options.s3 ?? {},
    partSize: partSize ?? DEFAULT_PART_SIZE,
  };
}
