import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import {
  attemptKey,
  type Catalog,
  digestStored,
  openCatalog,
  PathTemplate,
  Shipper,
} from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../packages/core/src/stores/s3/store.js';
import { type FaultProxy, startFaultProxy } from '../emulators/fault-proxy.js';
import { prng, randomLogBytes } from '../support/logs.js';
import { type S3rverFixture, startS3rver } from '../support/s3rver.js';

const template = new PathTemplate();
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('S3 with 20% of requests failing (5xx, resets before and after the work)', () => {
  let s3: S3rverFixture;
  let proxy: FaultProxy;
  let store: S3Store;
  let direct: S3Client;
  let home: string;
  let catalog: Catalog;

  beforeAll(async () => {
    s3 = await startS3rver('faults');
    proxy = await startFaultProxy({ target: s3.endpoint, probability: 0.2, seed: 7 });
    store = S3Store.fromUrl(`s3://${s3.bucket}/logs`, {
      // Small flushes so a log spans many chunk objects and many requests.
      flushBytes: 256 * 1024,
      s3: { endpoint: proxy.url, force_path_style: true, max_attempts: 12 },
    });
    direct = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' });
    home = await mkdtemp(join(tmpdir(), 'tasklog-faults-'));
    catalog = await openCatalog(`sqlite://${join(home, 'catalog.db')}`);
  });

  afterAll(async () => {
    await catalog?.close();
    await store?.close();
    direct?.destroy();
    await proxy?.close();
    await s3?.close();
    await rm(home, { recursive: true, force: true });
  });

  /** Every object under the attempt's key, seen straight from s3rver (no faults). */
  async function objectsOf(relativePath: string): Promise<string[]> {
    const out = await direct.send(
      new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `logs/${relativePath}` }),
    );
    return (out.Contents ?? []).map((o) => o.Key!);
  }

  it('writes a running attempt chunk by chunk and finishes it byte-identical, leaving no chunk objects', async () => {
    const key = attemptKey({ dagId: 'faults', runId: 'r1', taskId: 'writer', tryNumber: 1 });
    const log = randomLogBytes(3 * 1024 * 1024, 1);
    const rand = prng(2);
    const writer = await store.openWriter(key);
    for (let at = 0; at < log.length; ) {
      const n = Math.min(log.length - at, 1 + Math.floor(rand() * 200_000));
      await writer.append(log.subarray(at, at + n));
      at += n;
      if (rand() < 0.3) await writer.flush();
    }
    await writer.finish({ size: log.length, sha256: sha256(log) });

    expect(await digestStored(store, key)).toEqual({ size: log.length, sha256: sha256(log) });
    expect(await objectsOf(template.render(key))).toEqual([`logs/${template.render(key)}`]);
    expect(proxy.stats.requests).toBeGreaterThan(20);
    expect(Object.values(proxy.stats.failed).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  it('ships a finished 20 MB log byte-identical through the shipper', async () => {
    const key = attemptKey({ dagId: 'faults', runId: 'r1', taskId: 'shipper', tryNumber: 1 });
    const rel = template.render(key);
    const file = join(home, 'logs', ...rel.split('/'));
    await mkdir(dirname(file), { recursive: true });
    const log = randomLogBytes(20 * 1024 * 1024, 3);
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
    expect(await objectsOf(rel)).toEqual([`logs/${rel}`]);
    expect((await catalog.get(key))?.state).toBe('shipped');
  });
});
