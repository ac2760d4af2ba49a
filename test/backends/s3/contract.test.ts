import { afterAll } from 'vitest';
import { S3Store } from '../../packages/core/src/stores/s3/store.js';
import { type S3rverFixture, startS3rver } from '../support/s3rver.js';
import { describeStoreContract } from './store-contract.js';

let server: Promise<S3rverFixture> | undefined;
let stores = 0;

afterAll(async () => {
  await (await server)?.close();
});

for (const compression of ['none', 'gzip'] as const) {
  const setup = async (flushBytes?: number) => {
    server ??= startS3rver();
    const { endpoint, bucket } = await server;
    // A fresh prefix per test: an empty store without restarting the server.
    const store = S3Store.fromUrl(`s3://${bucket}/contract-${compression}-${stores++}`, {
      compression,
      ...(flushBytes === undefined ? {} : { flushBytes }),
      s3: { endpoint, force_path_style: true, region: 'us-east-1', max_attempts: 2 },
    });
    return { store, cleanup: async () => {} };
  };
  describeStoreContract(`S3Store (s3rver, compression ${compression})`, () => setup(), {
    withFlushBytes: setup,
  });
}
