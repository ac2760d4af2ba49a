import { LocalStore } from '@tasklog/core';
import { describeStoreContract } from '@tasklog/core/testing';
import { makeTempDir, removeTempDir } from '../../support/temp-dir.js';

async function localStore(chunkSize?: number) {
  const root = await makeTempDir('contract');
  return {
    store: new LocalStore({ root, ...(chunkSize === undefined ? {} : { chunkSize }) }),
    cleanup: () => removeTempDir(root),
  };
}

describeStoreContract('LocalStore', () => localStore(), { withFlushBytes: localStore });
