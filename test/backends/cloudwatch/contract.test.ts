import { afterAll } from 'vitest';
import { CloudWatchStore } from '../../packages/core/src/stores/cloudwatch/store.js';
import { type CloudWatchEmulator, startCloudWatchEmulator } from '../emulators/cloudwatch/index.js';
import { describeStoreContract } from './store-contract.js';

// The store takes credentials from the SDK's default chain only; the environment is its first link.
process.env.AWS_ACCESS_KEY_ID ??= 'AKIDTASKLOGTEST';
process.env.AWS_SECRET_ACCESS_KEY ??= 'tasklog-test-secret';

let emulator: Promise<CloudWatchEmulator> | undefined;
let n = 0;
afterAll(async () => {
  await (await emulator)?.close();
});

/** A fresh log group per test on one shared emulator (created on demand by the store). */
describeStoreContract('CloudWatchStore', async () => {
  emulator ??= startCloudWatchEmulator();
  const emu = await emulator;
  const store = CloudWatchStore.fromUrl(
    `cloudwatch://arn:aws:logs:us-east-1:000000000000:log-group:/tasklog/contract-${n++}`,
    { cloudwatch: { endpoint: emu.url, max_attempts: 3 } },
    { maxRetryDelayMs: 100 },
  );
  return { store, cleanup: async () => {} };
});
