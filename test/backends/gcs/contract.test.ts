import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { GcsStore } from '../../packages/core/src/stores/gcs/store.js';
import { type GcsEmulator, startGcsEmulator } from '../emulators/gcs/index.js';
import { describeStoreContract } from './store-contract.js';

let emulator: Promise<GcsEmulator> | undefined;
afterAll(async () => {
  await (await emulator)?.close();
});

/** A fresh bucket per test on one shared emulator. */
function setup(compression: 'none' | 'gzip') {
  return async (flushBytes?: number) => {
    emulator ??= startGcsEmulator();
    const emu = await emulator;
    const bucket = `contract-${randomBytes(6).toString('hex')}`;
    emu.createBucket(bucket);
    const store = GcsStore.fromUrl(
      `gs://${bucket}/airflow/logs`,
      {
        compression,
        ...(flushBytes === undefined ? {} : { flushBytes }),
        gcs: { api_endpoint: emu.url, project_id: 'tasklog-test', max_attempts: 3 },
      },
      { maxRetryDelaySeconds: 1 },
    );
    return { store, cleanup: async () => {} };
  };
}

for (const compression of ['none', 'gzip'] as const) {
  const make = setup(compression);
  describeStoreContract(`GcsStore (compression ${compression})`, () => make(), {
    withFlushBytes: make,
  });
}
