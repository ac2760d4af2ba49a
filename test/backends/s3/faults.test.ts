import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { S3Store } from '../../../packages/core/src/stores/s3/store.js';
import { type FaultProxy, startFaultProxy } from '../../emulators/fault-proxy.js';
import {
  itEndsByteIdenticalThroughFaults,
  openShipperHome,
  type ShipperHome,
} from '../../support/faults.js';
import { type S3rverFixture, startS3rver } from '../../support/s3rver.js';

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

  itEndsByteIdenticalThroughFaults(
    {
      running: { mib: 3, seed: 1, pieces: { seed: 2, maxPieceBytes: 200_000 } },
      shipped: { mib: 20, seed: 3 },
    },
    () => ({ store, home, objectsOf }),
    {
      afterRunning: () => {
        expect(proxy.stats.requests).toBeGreaterThan(20);
        expect(Object.values(proxy.stats.failed).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      },
      afterShipped: async (key) => {
        expect((await home.catalog.get(key))?.state).toBe('shipped');
      },
    },
  );
});
