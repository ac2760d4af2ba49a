import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  attemptKey,
  type Catalog,
  digestStored,
  openCatalog,
  PathTemplate,
  Shipper,
} from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GcsStore } from '../../packages/core/src/stores/gcs/store.js';
import { type GcsEmulator, startGcsEmulator } from '../emulators/gcs/index.js';
import { prng, randomLogBytes } from '../support/logs.js';

const template = new PathTemplate();
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('GCS with 20% of requests failing (5xx, resets, answers lost after the work)', () => {
  let emulator: GcsEmulator;
  let store: GcsStore;
  let home: string;
  let catalog: Catalog;

  beforeAll(async () => {
    emulator = await startGcsEmulator();
    emulator.createBucket('faults');
    store = GcsStore.fromUrl(
      'gs://faults/logs',
      { flushBytes: 256 * 1024, gcs: { api_endpoint: emulator.url, max_attempts: 12 } },
      { maxRetryDelaySeconds: 1, uploadChunkSize: 1024 * 1024 },
    );
    home = await mkdtemp(join(tmpdir(), 'tasklog-gcs-faults-'));
    catalog = await openCatalog(`sqlite://${join(home, 'catalog.db')}`);
    emulator.faults.failRandomly({
      probability: 0.2,
      seed: 11,
      kinds: ['503', '500', '429', 'reset', 'resetAfterCommit'],
    });
  });

  afterAll(async () => {
    await catalog?.close();
    await store?.close();
    await emulator?.close();
    await rm(home, { recursive: true, force: true });
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
    const key = attemptKey({ dagId: 'faults', runId: 'r1', taskId: 'writer', tryNumber: 1 });
    const log = randomLogBytes(2 * 1024 * 1024, 5);
    const rand = prng(6);
    const writer = await store.openWriter(key);
    for (let at = 0; at < log.length; ) {
      const n = Math.min(log.length - at, 1 + Math.floor(rand() * 150_000));
      await writer.append(log.subarray(at, at + n));
      at += n;
      if (rand() < 0.3) await writer.flush();
    }
    await writer.finish({ size: log.length, sha256: sha256(log) });
    expect(await digestStored(store, key)).toEqual({ size: log.length, sha256: sha256(log) });

    emulator.faults.clear();
    expect(await objectsOf(template.render(key))).toEqual([`logs/${template.render(key)}`]);
    emulator.faults.failRandomly({ probability: 0.2, seed: 12 });
  });

  it('ships a finished 8 MB log byte-identical through the shipper', async () => {
    const key = attemptKey({ dagId: 'faults', runId: 'r1', taskId: 'shipper', tryNumber: 1 });
    const rel = template.render(key);
    const file = join(home, 'logs', ...rel.split('/'));
    await mkdir(dirname(file), { recursive: true });
    const log = randomLogBytes(8 * 1024 * 1024, 7);
    await writeFile(file, log);
    const shipper = new Shipper({
      store,
      catalog,
      pathTemplate: template,
      baseLogFolder: join(home, 'logs'),
      stateFolder: join(home, 'state'),
      deleteLocalCopy: false,
    });
    const result = await shipper.shipFile(file);
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
