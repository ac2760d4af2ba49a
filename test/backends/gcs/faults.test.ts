import { PathTemplate } from '@tasklog/core';
import { randomLogBytes } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestStored } from '../../../packages/core/src/hashing.js';
import { GcsStore } from '../../../packages/core/src/stores/gcs/store.js';
import { type GcsEmulator, startGcsEmulator } from '../../emulators/gcs/index.js';
import {
  faultKey,
  openShipperHome,
  type ShipperHome,
  writeInRandomPieces,
} from '../../support/faults.js';
import { sha256 } from '../../support/hash.js';

const template = new PathTemplate();

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

  /** Object names under the attempt, straight from the emulator (callers turn faults off). */
  async function objectsOf(relativePath: string): Promise<string[]> {
    const res = await fetch(
      `${emulator.url}/storage/v1/b/faults/o?prefix=${encodeURIComponent(`logs/${relativePath}`)}`,
    );
    const body = (await res.json()) as { items?: { name: string }[] };
    return (body.items ?? []).map((i) => i.name);
  }

  it('writes a running attempt chunk by chunk and finishes it byte-identical, leaving no chunk objects', async () => {
    const key = faultKey({ taskId: 'writer' });
    const log = randomLogBytes(2 * 1024 * 1024, 5);
    await writeInRandomPieces(store, key, log, {
      seed: 6,
      maxPieceBytes: 150_000,
      flushChance: 0.3,
    });
    expect(await digestStored(store, key)).toEqual({ size: log.length, sha256: sha256(log) });

    emulator.faults.clear();
    expect(await objectsOf(template.render(key))).toEqual([`logs/${template.render(key)}`]);
    emulator.faults.failRandomly({ probability: 0.2, seed: 12 });
  });

  it('ships a finished 8 MB log byte-identical through the shipper', async () => {
    const key = faultKey({ taskId: 'shipper' });
    const rel = template.render(key);
    const log = randomLogBytes(8 * 1024 * 1024, 7);
    const result = await home.ship(store, key, log);
    expect(result).toMatchObject({ outcome: 'shipped', size: log.length, sha256: sha256(log) });
    expect(await digestStored(store, key)).toEqual({ size: log.length, sha256: sha256(log) });
    emulator.faults.clear();
    expect(await objectsOf(rel)).toEqual([`logs/${rel}`]);
    const failed = emulator.requestLog.filter(
      (r) => r.status >= 500 || r.status === 429 || r.status === 0,
    );
    expect(failed.length).toBeGreaterThan(0);
  });
});
