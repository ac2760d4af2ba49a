import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { CloudLoggingStore } from '../../packages/core/src/stores/cloud-logging/store.js';
import {
  type CloudLoggingEmulator,
  startCloudLoggingEmulator,
} from '../emulators/cloud-logging/index.js';
import { describeStoreContract } from './store-contract.js';

process.env.METADATA_SERVER_DETECTION = 'none';

let emulator: Promise<CloudLoggingEmulator> | undefined;
afterAll(async () => {
  await (await emulator)?.close();
});

/** A fresh log name per test on one shared emulator. */
function setup(transport: 'grpc' | 'rest') {
  return async () => {
    emulator ??= startCloudLoggingEmulator();
    const emu = await emulator;
    const store = CloudLoggingStore.fromUrl(
      `stackdriver://contract-${randomBytes(6).toString('hex')}`,
      {
        stackdriver: {
          project_id: 'tasklog-test',
          api_endpoint: transport === 'grpc' ? `http://${emu.url}` : emu.restUrl,
          transport,
        },
      } as Parameters<typeof CloudLoggingStore.fromUrl>[1],
      // Contract run ids hold no logical date; the warning about it is not what is tested here.
      { warn: () => {} },
    );
    return { store, cleanup: async () => {} };
  };
}

describeStoreContract('CloudLoggingStore (gRPC)', setup('grpc'));
describeStoreContract('CloudLoggingStore (REST)', setup('rest'));
