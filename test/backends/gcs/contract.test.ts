import { describeStoreContract } from '@tasklog/core/testing';
import { GcsStore } from '../../../packages/core/src/stores/gcs/store.js';
import { startGcsEmulator } from '../../emulators/gcs/index.js';
import { freshName, sharedServer } from '../../support/servers.js';

const emulator = sharedServer(() => startGcsEmulator());

/** A fresh bucket per test on one shared emulator. */
function setup(compression: 'none' | 'gzip') {
  return async (flushBytes?: number) => {
    const emu = await emulator();
    const bucket = freshName('contract');
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
    return { store };
  };
}

for (const compression of ['none', 'gzip'] as const) {
  const make = setup(compression);
  describeStoreContract(`GcsStore (compression ${compression})`, () => make(), {
    withFlushBytes: make,
  });
}
