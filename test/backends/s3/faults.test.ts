import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { PathTemplate } from '@tasklog/core';
import { randomLogBytes } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestStored } from '../../../packages/core/src/hashing.js';
import { S3Store } from '../../../packages/core/src/stores/s3/store.js';
import { type FaultProxy, startFaultProxy } from '../../emulators/fault-proxy.js';
import {
  faultKey,
  openShipperHome,
  type ShipperHome,
  writeInRandomPieces,
} from '../../support/faults.js';
import { sha256 } from '../../support/hash.js';
import { type S3rverFixture, startS3rver } from '../../support/s3rver.js';

const template = new PathTemplate();

describe('S3 with 20% of requests failing (5xx, resets before and after the work)', () => {
  let s3: S3rverFixture;
  let proxy: FaultProxy;
  let store: S3Store;
  let direct: S3Client;
  let home: ShipperHome;

  beforeAll(async () => {
    s3 = await startS3rver('faults');
    proxy = await startFaultProxy({ target: s3.endpoint, probability: 0.2, seed: 7 });
    store = S3Store.fromUrl(`s3://${s3.bucket}/logs`, {
      // Small flushes so a log spans many chunk objects and many requests.
      flushBytes: 256 * 1024,
      s3: { endpoint: proxy.url, force_path_style: true, max_attempts: 12 },
    });
    direct = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' });
    home = await openShipperHome('s3-faults');
  });

  afterAll(async () => {
    await home?.close();
    await store?.close();
    direct?.destroy();
    await proxy?.close();
    await s3?.close();
  });

  /** Every object under the attempt's key, seen straight from s3rver (no faults). */
  async function objectsOf(relativePath: string): Promise<string[]> {
    const out = await direct.send(
      new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `logs/${relativePath}` }),
    );
    return (out.Contents ?? []).map((o) => o.Key!);
  }

  it('writes a running attempt chunk by chunk and finishes it byte-identical, leaving no chunk objects', async () => {
    const key = faultKey({ taskId: 'writer' });
    const log = randomLogBytes(3 * 1024 * 1024, 1);
    await writeInRandomPieces(store, key, log, {
      seed: 2,
      maxPieceBytes: 200_000,
      flushChance: 0.3,
    });

    expect(await digestStored(store, key)).toEqual({ size: log.length, sha256: sha256(log) });
    expect(await objectsOf(template.render(key))).toEqual([`logs/${template.render(key)}`]);
    expect(proxy.stats.requests).toBeGreaterThan(20);
    expect(Object.values(proxy.stats.failed).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('ships a finished 20 MB log byte-identical through the shipper', async () => {
    const key = faultKey({ taskId: 'shipper' });
    const rel = template.render(key);
    const log = randomLogBytes(20 * 1024 * 1024, 3);
    const result = await home.ship(store, key, log);
    expect(result).toMatchObject({ outcome: 'shipped', size: log.length, sha256: sha256(log) });
    expect(await digestStored(store, key)).toEqual({ size: log.length, sha256: sha256(log) });
    expect(await objectsOf(rel)).toEqual([`logs/${rel}`]);
    expect((await home.catalog.get(key))?.state).toBe('shipped');
  });
});
