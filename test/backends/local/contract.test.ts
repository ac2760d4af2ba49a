import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalStore } from '@tasklog/core';
import { describeStoreContract } from './store-contract.js';

async function localStore(chunkSize?: number) {
  const root = await mkdtemp(path.join(tmpdir(), 'tasklog-contract-'));
  return {
    store: new LocalStore({ root, ...(chunkSize === undefined ? {} : { chunkSize }) }),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

describeStoreContract('LocalStore', () => localStore(), { withFlushBytes: localStore });
