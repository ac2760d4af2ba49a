import { describeStoreContract } from '@tasklog/core/testing';
import { CloudLoggingStore } from '../../../packages/core/src/stores/cloud-logging/store.js';
import { startCloudLoggingEmulator } from '../../emulators/cloud-logging/index.js';
import { freshName, sharedServer } from '../../support/servers.js';

process.env.METADATA_SERVER_DETECTION = 'none';

const emulator = sharedServer(() => startCloudLoggingEmulator());

/** A fresh log name per test on one shared emulator. */
function setup(transport: 'grpc' | 'rest') {
  return async () => {
    const emu = await emulator();
    const store = new CloudLoggingStore({
      logName: freshName('contract'),
      projectId: 'tasklog-test',
      apiEndpoint: transport === 'grpc' ? `http://${emu.url}` : emu.restUrl,
      transport,
      // Contract run ids hold no logical date; the warning about it is not what is tested here.
      warn: () => {},
    });
    return { store };
  };
}

describeStoreContract('CloudLoggingStore (gRPC)', setup('grpc'));
describeStoreContract('CloudLoggingStore (REST)', setup('rest'));
