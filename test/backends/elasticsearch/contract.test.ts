import { describeStoreContract } from '@tasklog/core/testing';
import { ElasticsearchStore } from '../../../packages/core/src/stores/elasticsearch/store.js';
import { startElasticsearchEmulator } from '../../emulators/elasticsearch/index.js';
import { freshName, sharedServer } from '../../support/servers.js';

const emulator = sharedServer(() => startElasticsearchEmulator({ refreshIntervalMs: 20 }));

/**
 * A fresh index per test on one shared emulator. The refresh interval is short so the suite
 * runs quickly, but writes still become searchable only through refreshes, as on a cluster.
 */
describeStoreContract('ElasticsearchStore', async () => {
  const emu = await emulator();
  const index = freshName('contract');
  const url = emu.url.replace('http://', 'elasticsearch+http://');
  const store = ElasticsearchStore.fromUrl(
    `${url}/${index}`,
    {},
    // Small pieces so the 5 MiB line is split into many documents and bulks.
    { maxLineBytes: 64 * 1024, bulkBytes: 1024 * 1024, retryBaseDelayMs: 5 },
  );
  return { store };
});
