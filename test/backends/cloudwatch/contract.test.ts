import { describeStoreContract } from '@tasklog/core/testing';
import { startCloudWatchEmulator } from '../../emulators/cloudwatch/index.js';
import { cloudWatchStoreOn } from '../../support/cloudwatch.js';
import { sharedServer } from '../../support/servers.js';

// The store takes credentials from the SDK's default chain only; the environment is its first link.
process.env.AWS_ACCESS_KEY_ID ??= 'AKIDTASKLOGTEST';
process.env.AWS_SECRET_ACCESS_KEY ??= 'tasklog-test-secret';

const emulator = sharedServer(() => startCloudWatchEmulator());
let n = 0;

/** A fresh log group per test on one shared emulator (created on demand by the store). */
describeStoreContract('CloudWatchStore', async () => {
  const emu = await emulator();
  return { store: cloudWatchStoreOn(emu, `/tasklog/contract-${n++}`, 3, { maxRetryDelayMs: 100 }) };
});
