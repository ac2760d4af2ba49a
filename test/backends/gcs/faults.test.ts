import { afterAll, beforeAll, describe, expect } from 'vitest';
import { GcsStore } from '../../../packages/core/src/stores/gcs/store.js';
import { type GcsEmulator, startGcsEmulator } from '../../emulators/gcs/index.js';
import {
  itEndsByteIdenticalThroughFaults,
  openShipperHome,
  type ShipperHome,
} from '../../support/faults.js';

describe('GCS with 20% of requests failing (5xx, resets, answers lost after the work)', () => {
  let emulator: GcsEmulator;
  let store: GcsStore;
  let home: ShipperHome;

  beforeAll(async () => {
    emulator = await startGcsEmulator();
    emulator.createBucket('faults');
    store = GcsStore.fromUrl(
      'gs://faults/logs',
      { flushBytes: 256 * 1024, gcs: { api_endpoint: emulator.url, max_attempts: 12 } },
      { maxRetryDelaySeconds: 1, uploadChunkSize: 1024 * 1024 },
    );
    home = await openShipperHome('gcs-faults');
    emulator.faults.failRandomly({
      probability: 0.2,
      seed: 11,
      kinds: ['503', '500', '429', 'reset', 'resetAfterCommit'],
    });
  });

  afterAll(async () => {
    await home?.close();
    await store?.close();
    await emulator?.close();
  });

  /**
   * Object names under the attempt, straight from the emulator: its faults are cleared first and
   * stay off until a test turns them on again.
   */
  async function objectsOf(relativePath: string): Promise<string[]> {
    emulator.faults.clear();
    const res = await fetch(
      `${emulator.url}/storage/v1/b/faults/o?prefix=${encodeURIComponent(`logs/${relativePath}`)}`,
    );
    const body = (await res.json()) as { items?: { name: string }[] };
    return (body.items ?? []).map((i) => i.name);
  }

  itEndsByteIdenticalThroughFaults(
    {
      running: { mib: 2, seed: 5, pieces: { seed: 6, maxPieceBytes: 150_000 } },
      shipped: { mib: 8, seed: 7 },
    },
    () => ({ store, home, objectsOf }),
    {
      afterRunning: () => emulator.faults.failRandomly({ probability: 0.2, seed: 12 }),
      afterShipped: async () => {
        const failed = emulator.requestLog.filter(
          (r) => r.status >= 500 || r.status === 429 || r.status === 0,
        );
        expect(failed.length).toBeGreaterThan(0);
      },
    },
  );
});
