import { S3Client } from '@aws-sdk/client-s3';
import type { AttemptKey } from '@tasklog/core';
import type { S3StoreOptions } from '../../../packages/core/src/stores/s3/store.js';
import { attemptKeys } from '../../support/attempts.js';
import type { S3rverFixture } from '../../support/s3rver.js';

/**
 * What the S3Store test files share: the attempts they store, the options of a store on a prefix
 * no other test uses, and a client that sees s3rver without a store in between.
 */
export const MiB = 1024 * 1024;

export const key: (overrides?: Partial<AttemptKey>) => AttemptKey = attemptKeys({
  dagId: 'etl',
  runId: 'scheduled__2024-01-01T00:00:00+00:00',
  taskId: 'load',
});

let prefixes = 0;

/** A store's options on `on`, below a prefix of its own so that it starts empty. */
export function storeOptions(
  on: S3rverFixture,
  options: Partial<S3StoreOptions> = {},
): S3StoreOptions {
  return {
    bucket: on.bucket,
    prefix: `logs/t${prefixes++}`,
    s3: { endpoint: on.endpoint, force_path_style: true, region: 'us-east-1', max_attempts: 2 },
    ...options,
  };
}

/** An S3 client straight at s3rver, sending and checking no checksum it is not asked for. */
export function rawClient(on: S3rverFixture): S3Client {
  return new S3Client({
    endpoint: on.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
