/**
 * Runs the LogStore contract suite, the same one every tasklog backend passes, on MemoryStore.
 *
 *   npx vitest run examples/custom-store.test.ts
 *
 * `@tasklog/core/testing` needs vitest and fast-check installed (optional peer dependencies).
 */
import { describeStoreContract } from '@tasklog/core/testing';
import { MemoryStore } from './custom-store.js';

// The setup returns a fresh, empty store for every test; `cleanup` (not needed here) would
// remove what it stored, e.g. a temporary folder or bucket prefix.
describeStoreContract('MemoryStore', async () => ({ store: new MemoryStore() }));
