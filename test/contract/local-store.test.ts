import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalStore } from '@tasklog/core';
import { describeStoreContract } from './store-contract.js';

describeStoreContract('LocalStore', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'tasklog-contract-'));
  return {
    store: new LocalStore({ root }),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});
