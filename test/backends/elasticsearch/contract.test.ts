import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';
import { ElasticsearchStore } from '../../packages/core/src/stores/elasticsearch/store.js';
import {
  type ElasticsearchEmulator,
  startElasticsearchEmulator,
} from '../emulators/elasticsearch/index.js';
import { describeStoreContract } from './store-contract.js';

let emulator: Promise<ElasticsearchEmulator> | undefined;
afterAll(async () => {
  await (await emulator)?.close();
});

/**
 * A fresh index per test on one shared emulator. The refresh interval is short so the suite
 * runs quickly, but writes still become searchable only through refreshes, as on a cluster.
 */
describeStoreContract('ElasticsearchStore', async () => {
  emulator ??= startElasticsearchEmulator({ refreshIntervalMs: 20 });
  const emu = await emulator;
  const index = `contract-${randomBytes(6).toString('hex')}`;
  const url = emu.url.replace('http://', 'elasticsearch+http://');
  const store = ElasticsearchStore.fromUrl(
    `${url}/${index}`,
    {},
    // Small pieces so the 5 MiB line is split into many documents and bulks.
    { maxLineBytes: 64 * 1024, bulkBytes: 1024 * 1024, retryBaseDelayMs: 5 },
  );
  return { store, cleanup: async () => {} };
});
