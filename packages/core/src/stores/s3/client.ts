import type {
  ChecksumAlgorithm,
  S3Client,
  ServerSideEncryption,
  StorageClass,
} from '@aws-sdk/client-s3';
import { importOptional } from '../../optional-import.js';
import { type ResolvedS3Options, s3Defaults } from './settings.js';

/**
 * What every S3 call of the store and its writers needs: the loaded SDK, the client, the bucket
 * and the settings of the objects tasklog writes.
 */
export interface S3Context {
  readonly sdk: typeof import('@aws-sdk/client-s3');
  readonly client: S3Client;
  readonly bucket: string;
  readonly sse?: ServerSideEncryption;
  readonly kmsKeyId?: string;
  readonly storageClass?: StorageClass;
  readonly checksumAlgorithm?: ChecksumAlgorithm;
  /** Part size of finished logs, at least 5 MiB (raised where 10,000 parts would not hold a log). */
  readonly partSize: number;
  /** Keys per ListObjectsV2 page. */
  readonly listPageSize: number;
  /**
   * Whether UploadPartCopy works. Assumed until the server answers NotImplemented (s3rver 3.7
   * and some S3-compatible stores), then finish() streams those chunks instead.
   */
  partCopy: boolean;
}

/**
 * Loads the SDK (an optional peer dependency, as is `@aws-sdk/credential-providers`, needed only
 * for `role_arn`) and builds the client. The store calls it on first use, so a process reading a
 * local archive never loads the SDK.
 */
export async function createS3Context(options: ResolvedS3Options): Promise<S3Context> {
  const sdk = await importOptional(
    '@aws-sdk/client-s3',
    'the s3 store',
    () => import('@aws-sdk/client-s3'),
  );
  const s3 = options.s3;
  const credentials = s3.role_arn
    ? (
        await importOptional(
          '@aws-sdk/credential-providers',
          'the s3 store',
          () => import('@aws-sdk/credential-providers'),
        )
      ).fromTemporaryCredentials({
        params: {
          RoleArn: s3.role_arn,
          RoleSessionName: s3.role_session_name ?? s3Defaults.role_session_name,
          ...(s3.external_id ? { ExternalId: s3.external_id } : {}),
        },
      })
    : undefined; // the SDK's default chain: env, profile, web identity, ECS/EC2 roles
  const client: S3Client = new sdk.S3Client({
    ...(s3.region ? { region: s3.region } : {}),
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    forcePathStyle: s3.force_path_style ?? s3Defaults.force_path_style,
    maxAttempts: s3.max_attempts ?? s3Defaults.max_attempts,
    // Exponential backoff with full jitter; throttling (SlowDown, 503) and transient errors.
    retryMode: 'standard',
    // The SDK's default (WHEN_SUPPORTED) sends every upload aws-chunked with a trailing
    // checksum. S3 decodes that, but s3rver and several S3-compatible stores store the
    // framing as object data: a silently corrupted log. Content-MD5 on every PutObject and
    // UploadPart already lets the server reject damaged bytes; a configured checksum_algorithm
    // opts in to the extra checksum where the store supports it.
    requestChecksumCalculation: s3.checksum_algorithm ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED',
    // Objects assembled by multipart upload have no full-object checksum to validate against,
    // and S3-compatible stores return none; tasklog verifies ETags and sha256 itself.
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(credentials ? { credentials } : {}),
  });
  return {
    sdk,
    client,
    bucket: options.bucket,
    ...(s3.sse ? { sse: s3.sse } : {}),
    ...(s3.kms_key_id ? { kmsKeyId: s3.kms_key_id } : {}),
    ...(s3.storage_class ? { storageClass: s3.storage_class as never } : {}),
    ...(s3.checksum_algorithm ? { checksumAlgorithm: s3.checksum_algorithm } : {}),
    partCopy: true,
    partSize: options.partSize,
    listPageSize: options.listPageSize,
  };
}

/** SSE and the extra checksum: every object tasklog writes carries them, chunks included. */
export function writeParams(ctx: S3Context) {
  return {
    ...(ctx.sse ? { ServerSideEncryption: ctx.sse } : {}),
    ...(ctx.kmsKeyId ? { SSEKMSKeyId: ctx.kmsKeyId } : {}),
    ...(ctx.checksumAlgorithm ? { ChecksumAlgorithm: ctx.checksumAlgorithm } : {}),
  };
}
