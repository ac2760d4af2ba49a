/**
 * `@tasklog/core/testing`: the LogStore contract suite, for tasklog's stores and for anyone
 * writing another one, and the small helpers it is built from. Imports vitest and fast-check,
 * which are optional peer dependencies of @tasklog/core: install them to use this entry point.
 */
export { prng, randomLogBytes } from './logs.js';
export { readAll } from './read-all.js';
export {
  type ContractOptions,
  describeStoreContract,
  type StoreFixture,
} from './store-contract.js';
