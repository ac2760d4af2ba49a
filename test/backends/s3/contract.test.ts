import { describeStoreContract } from '@tasklog/core/testing';
import { S3Store } from '../../../packages/core/src/stores/s3/store.js';
import { startS3rver } from '../../support/s3rver.js';
import { sharedServer } from '../../support/servers.js';

const server = sharedServer(() => startS3rver());
let stores = 0;

for (const compression of ['none', 'gzip'] as const) {
  const setup = async (flushBytes?: number) => {
    const { endpoint, bucket } = await server();
    // A fresh prefix per test: an empty store without restarting the server.
    const store = S3Store.fromUrl(`s3://${bucket}/contract-${compression}-${stores++}`, {
      compression,
      ...(flushBytes === undefined ? {} : { flushBytes }),
      s3: { endpoint, force_path_style: true, region: 'us-east-1', max_attempts: 2 },
    });
    return { store };
  };
  describeStoreContract(`S3Store (s3rver, compression ${compression})`, () => setup(), {
    withFlushBytes: setup,
  });
}
