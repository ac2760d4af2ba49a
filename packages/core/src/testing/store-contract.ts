import { afterEach, beforeEach, describe } from 'vitest';
import type { LogStore } from '../store.js';
import { describeAutomaticFlushes } from './contract/automatic-flushes.js';
import {
  type ContractOptions,
  type ContractSuite,
  release,
  type StoreFixture,
} from './contract/fixture.js';
import { describeListingAndDeleting } from './contract/listing.js';
import { describeOptionalMethods } from './contract/optional-methods.js';
import { describeProperty } from './contract/property.js';
import { describeReads } from './contract/reads.js';
import { describeWriters } from './contract/writers.js';

export type { ContractOptions, StoreFixture } from './contract/fixture.js';

/**
 * Declares, with vitest's `describe`/`it`, the behaviour every LogStore promises: byte-exact
 * round trips (empty logs, CRLF, a 5 MiB line, multi-byte characters cut by flushes), reads from
 * any offset and up to an `end`, NotFoundError/OffsetOutOfRangeError, writers that resume at the
 * committed offset after a crash or an abort, finish() verifying size and sha256, listing by
 * dag/run/task/map index, deleting, and a fast-check property over content, flush points and
 * offsets. Call it at the top level of a test file, once per store configuration:
 *
 * ```ts
 * import { describeStoreContract } from '@tasklog/core/testing';
 *
 * describeStoreContract('MyStore', async () => {
 *   const store = new MyStore({ bucket: await freshBucket() });
 *   return { store, cleanup: () => dropBucket(store) };
 * });
 * ```
 *
 * @param name Names the suite in the report: `LogStore contract: <name>`.
 * @param setup Makes a fresh store per test, empty of the attempts the suite writes (dags
 *   `contract_dag`, `etl`, `etl_other`, `reports`); a new prefix, bucket, index or log name per
 *   call on one shared server is the cheap way. It is also called once while the suite is
 *   collected, to read the store's capabilities; the suite closes every store it gets and then
 *   calls the fixture's `cleanup`.
 * @param options Optional parts of the contract, see {@link ContractOptions}.
 *
 * What the store declares decides what runs: `capabilities.liveAppend` the tests that read a
 * running attempt, `sweep` and `upload` (both optional on LogStore) the tests of those methods.
 * Everything else applies to every store. Some tests move megabytes; give the suite a test
 * timeout of about a minute for a store behind a network emulator. Needs vitest and fast-check,
 * optional peer dependencies of @tasklog/core.
 */
export function describeStoreContract(
  name: string,
  setup: () => Promise<StoreFixture>,
  options: ContractOptions = {},
): void {
  describe(`LogStore contract: ${name}`, async () => {
    const probe = await setup();
    const capabilities = probe.store.capabilities;
    const canSweep = typeof probe.store.sweep === 'function';
    const canUpload = typeof probe.store.upload === 'function';
    await release(probe);

    let fixture: StoreFixture;
    let store: LogStore;
    beforeEach(async () => {
      fixture = await setup();
      store = fixture.store;
    });
    afterEach(async () => {
      await release(fixture);
    });

    const suite: ContractSuite = {
      get store() {
        return store;
      },
      capabilities,
      canSweep,
      canUpload,
      options,
    };
    describeReads(suite);
    describeWriters(suite);
    describeListingAndDeleting(suite);
    describeOptionalMethods(suite);
    describeProperty(suite);
    describeAutomaticFlushes(suite);
  });
}
