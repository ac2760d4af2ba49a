import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { crc32c, crc32cToBase64 } from './crc32c.js';
import * as gcs from './gcs-emulator-fixture.js';

// The emulator through the SDK: what @google-cloud/storage sends and how it takes the answers.
gcs.startEmulatorForThisFile();

describe('buckets', () => {
  it('reports an existing bucket as existing and an unknown one as missing', async () => {
    expect(await gcs.bucket.exists()).toEqual([true]);
    expect(await gcs.storage.bucket('no-such-bucket').exists()).toEqual([false]);
  });

  it('creates a bucket through buckets.insert', async () => {
    await gcs.storage.createBucket('created-by-sdk');
    expect(await gcs.storage.bucket('created-by-sdk').exists()).toEqual([true]);
  });
});

describe('uploads and downloads through the SDK', () => {
  it('stores a small file with the default resumable upload and returns it byte for byte', async () => {
    const file = gcs.bucket.file('small/hello.txt');
    await file.save('hello, emulator');
    const [data] = await file.download();
    expect(data.toString()).toBe('hello, emulator');
  });

  it('reports size, md5Hash and crc32c that match the bytes', async () => {
    const data = randomBytes(10_000);
    const file = gcs.bucket.file('small/hashes.bin');
    await file.save(data, { resumable: false });
    const [meta] = await file.getMetadata();
    expect(meta).toMatchObject({
      kind: 'storage#object',
      name: 'small/hashes.bin',
      bucket: gcs.BUCKET,
      size: '10000',
      md5Hash: gcs.md5Base64(data),
      crc32c: crc32cToBase64(crc32c(data)),
      storageClass: 'STANDARD',
    });
    expect(meta.generation).toMatch(/^\d+$/);
  });

  it('keeps contentType, contentEncoding and custom metadata from a multipart upload', async () => {
    const file = gcs.bucket.file('small/meta.txt');
    await file.save('x', {
      resumable: false,
      metadata: { contentType: 'text/plain', metadata: { attempt: '3', host: 'worker-1' } },
    });
    const [meta] = await file.getMetadata();
    expect(meta.contentType).toBe('text/plain');
    expect(meta.metadata).toEqual({ attempt: '3', host: 'worker-1' });
  });

  it('uploads 20 MB in 4 MiB chunks and downloads it identical, validated by crc32c and md5', async () => {
    const data = randomBytes(20 * gcs.MiB + 123);
    const file = gcs.bucket.file('big/20mb.bin');
    await pipeline(
      Readable.from(
        (function* () {
          for (let at = 0; at < data.length; at += gcs.MiB) yield data.subarray(at, at + gcs.MiB);
        })(),
      ),
      file.createWriteStream({ chunkSize: 4 * gcs.MiB, resumable: true }),
    );
    const chunkPuts = gcs.emulator.requestLog.filter(
      (r) => r.method === 'PUT' && r.path.includes('name=big%2F20mb.bin'),
    );
    expect(chunkPuts.map((r) => r.status)).toEqual([308, 308, 308, 308, 308, 200]);
    for (const validation of ['crc32c', 'md5'] as const) {
      const hash = createHash('sha256');
      await pipeline(file.createReadStream({ validation }), hash);
      expect(hash.digest('hex')).toBe(gcs.sha256(data));
    }
  });

  it('downloads byte ranges, open ranges and suffixes identical to the source', async () => {
    const data = randomBytes(300_000);
    const file = gcs.bucket.file('ranges.bin');
    await file.save(data);
    expect((await file.download({ start: 1000, end: 1999 }))[0]).toEqual(data.subarray(1000, 2000));
    expect((await file.download({ start: 299_990 }))[0]).toEqual(data.subarray(299_990));
    expect((await file.download({ end: -10 }))[0]).toEqual(data.subarray(-10));
    expect((await file.download({ start: 299_000, end: 400_000 }))[0]).toEqual(
      data.subarray(299_000),
    );
  });

  it('stores an empty object with each upload type', async () => {
    for (const resumable of [true, false]) {
      const file = gcs.bucket.file(`empty-${resumable}.txt`);
      await file.save('', { resumable });
      expect((await file.getMetadata())[0].size).toBe('0');
      expect((await file.download())[0].length).toBe(0);
    }
  });

  it('answers exists() true for a stored object and false for a missing one', async () => {
    await gcs.bucket.file('exists.txt').save('1');
    expect(await gcs.bucket.file('exists.txt').exists()).toEqual([true]);
    expect(await gcs.bucket.file('missing.txt').exists()).toEqual([false]);
  });

  it('refuses an upload with ifGenerationMatch 0 when the object exists (412)', async () => {
    const file = gcs.bucket.file('precondition.txt');
    await file.save('first', { preconditionOpts: { ifGenerationMatch: 0 } });
    for (const resumable of [true, false]) {
      await expect(
        file.save('second', { resumable, preconditionOpts: { ifGenerationMatch: 0 } }),
      ).rejects.toMatchObject({ code: 412 });
    }
    expect((await file.download())[0].toString()).toBe('first');
  });

  it('replaces an object when ifGenerationMatch names its current generation', async () => {
    const file = gcs.bucket.file('generation.txt');
    await file.save('v1');
    const [meta] = await file.getMetadata();
    await file.save('v2', { preconditionOpts: { ifGenerationMatch: Number(meta.generation) } });
    expect((await file.download())[0].toString()).toBe('v2');
  });
});

describe('listing', () => {
  beforeAll(async () => {
    for (const name of ['list/a/1', 'list/a/2', 'list/b/1', 'list/top', 'list/zz', 'other']) {
      expect((await gcs.uploadRaw(name, name)).status).toBe(200);
    }
  });

  it('lists objects under a prefix in lexicographic order', async () => {
    const [files] = await gcs.bucket.getFiles({ prefix: 'list/' });
    expect(files.map((f) => f.name)).toEqual([
      'list/a/1',
      'list/a/2',
      'list/b/1',
      'list/top',
      'list/zz',
    ]);
  });

  it('groups names under prefixes with a delimiter', async () => {
    const [files, , response] = await gcs.bucket.getFiles({
      prefix: 'list/',
      delimiter: '/',
      autoPaginate: false,
    });
    expect(files.map((f) => f.name)).toEqual(['list/top', 'list/zz']);
    expect((response as { prefixes: string[] }).prefixes).toEqual(['list/a/', 'list/b/']);
  });

  it('pages with maxResults and pageToken', async () => {
    const names: string[] = [];
    let query: object | null = { prefix: 'list/', maxResults: 2, autoPaginate: false };
    let pages = 0;
    while (query) {
      const [files, next]: [{ name: string }[], object | null, unknown] =
        await gcs.bucket.getFiles(query);
      expect(files.length).toBeLessThanOrEqual(2);
      names.push(...files.map((f) => f.name));
      query = next;
      pages++;
    }
    expect(pages).toBe(3);
    expect(names).toEqual(['list/a/1', 'list/a/2', 'list/b/1', 'list/top', 'list/zz']);
  });

  it('honours startOffset (inclusive) and endOffset (exclusive)', async () => {
    const [files] = await gcs.bucket.getFiles({
      prefix: 'list/',
      startOffset: 'list/a/2',
      endOffset: 'list/top',
    });
    expect(files.map((f) => f.name)).toEqual(['list/a/2', 'list/b/1']);
  });

  it('follows page tokens across more than 1000 objects with autoPaginate', async () => {
    const names = Array.from({ length: 1005 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    for (let at = 0; at < names.length; at += 100) {
      await Promise.all(names.slice(at, at + 100).map((n) => gcs.uploadRaw(n, 'x')));
    }
    const before = gcs.emulator.requestLog.length;
    const [files] = await gcs.bucket.getFiles({ prefix: 'many/' });
    expect(files.map((f) => f.name)).toEqual(names);
    const lists = gcs.emulator.requestLog
      .slice(before)
      .filter((r) => r.method === 'GET' && r.path.includes('/o?'));
    expect(lists).toHaveLength(2);
  });
});

describe('compose', () => {
  it('concatenates 3 sources with a combined crc32c, no md5Hash and componentCount 3', async () => {
    const parts = [randomBytes(1000), randomBytes(300_000), randomBytes(7)];
    await Promise.all(parts.map((p, i) => gcs.bucket.file(`compose/part-${i}`).save(p)));
    const [dest] = await gcs.bucket.combine(
      [0, 1, 2].map((i) => `compose/part-${i}`),
      'compose/whole',
    );
    const [meta] = await dest.getMetadata();
    const whole = Buffer.concat(parts);
    expect(meta.crc32c).toBe(crc32cToBase64(crc32c(whole)));
    expect(meta.md5Hash).toBeUndefined();
    expect(meta.componentCount).toBe(3);
    expect(meta.size).toBe(String(whole.length));
    gcs.expectSameBytes((await dest.download({ validation: 'crc32c' }))[0], whole);
  });

  it("refuses 33 sources with 400 and Google's message", async () => {
    await gcs.bucket.file('compose/one').save('1');
    await expect(
      gcs.bucket.combine(
        Array.from({ length: 33 }, () => 'compose/one'),
        'compose/too-many',
      ),
    ).rejects.toMatchObject({
      code: 400,
      message: 'The number of source components provided (33) exceeds the maximum (32)',
    });
  });

  it('answers 404 when a source is missing', async () => {
    await gcs.bucket.file('compose/one').save('1');
    await expect(
      gcs.bucket.combine(['compose/one', 'compose/absent'], 'compose/x'),
    ).rejects.toMatchObject({
      code: 404,
    });
  });

  it('refuses a destination that exists when ifGenerationMatch is 0 (412)', async () => {
    await gcs.bucket.file('compose/one').save('1');
    const res = await fetch(`${gcs.objectUrl('compose/one')}/compose?ifGenerationMatch=0`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ sourceObjects: [{ name: 'compose/one' }], destination: {} }),
    });
    expect(res.status).toBe(412);
  });
});

describe('delete', () => {
  it('deletes an object with 204 and answers 404 for it afterwards', async () => {
    await gcs.bucket.file('del/x').save('x');
    const res = await fetch(gcs.objectUrl('del/x'), { method: 'DELETE' });
    expect(res.status).toBe(204);
    await expect(gcs.bucket.file('del/x').delete()).rejects.toMatchObject({ code: 404 });
  });
});

describe('faults seen through the SDK', () => {
  it('retries a 503 once and succeeds', async () => {
    await gcs.bucket.file('fault/503.txt').save('ok');
    const rule = gcs.emulator.faults.add({
      match: { method: 'GET', path: 'fault%2F503.txt' },
      action: { status: 503 },
      times: 1,
    });
    const [meta] = await gcs.bucket.file('fault/503.txt').getMetadata();
    expect(meta.size).toBe('2');
    expect(rule.hits).toBe(1);
    const statuses = gcs.emulator.requestLog
      .filter((r) => r.path.includes('fault%2F503.txt'))
      .map((r) => r.status);
    expect(statuses.slice(-2)).toEqual([503, 200]);
  });

  it('resumes a chunked upload whose connection drops mid-way and stores it byte-identical', async () => {
    const data = randomBytes(3 * gcs.MiB + 17);
    const file = gcs.bucket.file('fault/reset.bin');
    gcs.emulator.faults.add({
      match: { method: 'PUT', uploadType: 'resumable', path: 'fault%2Freset.bin' },
      action: { reset: true },
      skip: 1,
      times: 1,
    });
    await file.save(data, { chunkSize: gcs.MiB, preconditionOpts: { ifGenerationMatch: 0 } });
    const puts = gcs.emulator.requestLog.filter(
      (r) => r.method === 'PUT' && r.path.includes('fault%2Freset.bin'),
    );
    expect(puts.map((r) => r.status)).toContain(0);
    expect(puts.at(-1)?.status).toBe(200);
    gcs.expectSameBytes((await file.download())[0], data);
  });

  it('finishes an upload whose chunk was stored but whose answer was lost', async () => {
    const data = randomBytes(2 * gcs.MiB + 5);
    const file = gcs.bucket.file('fault/uncertain.bin');
    gcs.emulator.faults.add({
      match: { method: 'PUT', uploadType: 'resumable', path: 'fault%2Funcertain.bin' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await file.save(data, { chunkSize: gcs.MiB, preconditionOpts: { ifGenerationMatch: 0 } });
    gcs.expectSameBytes((await file.download())[0], data);
  });

  it('cuts a download after truncateBodyAfter bytes', async () => {
    await gcs.uploadRaw('fault/cut.bin', randomBytes(100_000));
    gcs.emulator.faults.add({
      match: { path: 'fault%2Fcut.bin' },
      action: { truncateBodyAfter: 1000 },
      times: 1,
    });
    const res = await fetch(gcs.objectUrl('fault/cut.bin', '?alt=media'));
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
  });

  it('takes fault rules over HTTP from another process', async () => {
    await gcs.uploadRaw('fault/http.txt', 'x');
    const add = await fetch(`${gcs.emulator.url}/_emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({
        match: { path: 'fault%2Fhttp.txt' },
        action: { status: 429 },
        times: 1,
      }),
    });
    expect(add.status).toBe(200);
    expect((await fetch(gcs.objectUrl('fault/http.txt'))).status).toBe(429);
    expect((await fetch(gcs.objectUrl('fault/http.txt'))).status).toBe(200);
    await fetch(`${gcs.emulator.url}/_emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ match: { path: 'fault%2Fhttp.txt' }, action: { status: 500 } }),
    });
    expect((await fetch(`${gcs.emulator.url}/_emulator/faults`, { method: 'DELETE' })).status).toBe(
      204,
    );
    expect((await fetch(gcs.objectUrl('fault/http.txt'))).status).toBe(200);
  });
});
