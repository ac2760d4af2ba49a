import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { type Bucket, Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { crc32c, crc32cToBase64 } from './crc32c.js';
import { type GcsEmulator, startGcsEmulator } from './gcs-emulator.js';

const BUCKET = 'emulator-test';
const KiB = 1024;
const MiB = 1024 * KiB;

let emulator: GcsEmulator;
let storage: Storage;
let bucket: Bucket;

beforeAll(async () => {
  emulator = await startGcsEmulator();
  emulator.createBucket(BUCKET);
  // The SDK's retry waits are capped at 1 s (its lower bound) to keep fault tests quick.
  storage = new Storage({
    apiEndpoint: emulator.url,
    projectId: 'test',
    retryOptions: { maxRetryDelay: 1 },
  });
  bucket = storage.bucket(BUCKET);
});

afterAll(async () => {
  await emulator.close();
});

beforeEach(() => {
  emulator.faults.clear();
});

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
/** Deep equality on large Buffers is slow in vitest; compare digests instead. */
const expectSameBytes = (actual: Buffer, expected: Buffer) => {
  expect(actual.length).toBe(expected.length);
  expect(sha256(actual)).toBe(sha256(expected));
};
const md5Base64 = (data: Buffer) => createHash('md5').update(data).digest('base64');
const objectUrl = (name: string, query = '') =>
  `${emulator.url}/storage/v1/b/${BUCKET}/o/${encodeURIComponent(name)}${query}`;

async function uploadRaw(name: string, data: Buffer | string, query = ''): Promise<Response> {
  return fetch(
    `${emulator.url}/upload/storage/v1/b/${BUCKET}/o?uploadType=media&name=${encodeURIComponent(name)}${query}`,
    { method: 'POST', body: data, headers: { 'Content-Type': 'application/octet-stream' } },
  );
}

async function startSession(name: string): Promise<string> {
  const res = await fetch(
    `${emulator.url}/upload/storage/v1/b/${BUCKET}/o?uploadType=resumable&name=${encodeURIComponent(name)}`,
    { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' },
  );
  expect(res.status).toBe(200);
  return res.headers.get('location')!;
}

function putChunk(
  session: string,
  contentRange: string,
  body?: Buffer,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(session, {
    method: 'PUT',
    redirect: 'manual',
    headers: { 'Content-Range': contentRange, ...headers },
    body: body ?? Buffer.alloc(0),
  });
}

describe('buckets', () => {
  it('reports an existing bucket as existing and an unknown one as missing', async () => {
    expect(await bucket.exists()).toEqual([true]);
    expect(await storage.bucket('no-such-bucket').exists()).toEqual([false]);
  });

  it('creates a bucket through buckets.insert', async () => {
    await storage.createBucket('created-by-sdk');
    expect(await storage.bucket('created-by-sdk').exists()).toEqual([true]);
  });
});

describe('uploads and downloads through the SDK', () => {
  it('stores a small file with the default resumable upload and returns it byte for byte', async () => {
    const file = bucket.file('small/hello.txt');
    await file.save('hello, emulator');
    const [data] = await file.download();
    expect(data.toString()).toBe('hello, emulator');
  });

  it('reports size, md5Hash and crc32c that match the bytes', async () => {
    const data = randomBytes(10_000);
    const file = bucket.file('small/hashes.bin');
    await file.save(data, { resumable: false });
    const [meta] = await file.getMetadata();
    expect(meta).toMatchObject({
      kind: 'storage#object',
      name: 'small/hashes.bin',
      bucket: BUCKET,
      size: '10000',
      md5Hash: md5Base64(data),
      crc32c: crc32cToBase64(crc32c(data)),
      storageClass: 'STANDARD',
    });
    expect(meta.generation).toMatch(/^\d+$/);
  });

  it('keeps contentType, contentEncoding and custom metadata from a multipart upload', async () => {
    const file = bucket.file('small/meta.txt');
    await file.save('x', {
      resumable: false,
      metadata: { contentType: 'text/plain', metadata: { attempt: '3', host: 'worker-1' } },
    });
    const [meta] = await file.getMetadata();
    expect(meta.contentType).toBe('text/plain');
    expect(meta.metadata).toEqual({ attempt: '3', host: 'worker-1' });
  });

  it('uploads 20 MB in 4 MiB chunks and downloads it identical, validated by crc32c and md5', async () => {
    const data = randomBytes(20 * MiB + 123);
    const file = bucket.file('big/20mb.bin');
    await pipeline(
      Readable.from(
        (function* () {
          for (let at = 0; at < data.length; at += MiB) yield data.subarray(at, at + MiB);
        })(),
      ),
      file.createWriteStream({ chunkSize: 4 * MiB, resumable: true }),
    );
    const chunkPuts = emulator.requestLog.filter(
      (r) => r.method === 'PUT' && r.path.includes('name=big%2F20mb.bin'),
    );
    expect(chunkPuts.map((r) => r.status)).toEqual([308, 308, 308, 308, 308, 200]);
    for (const validation of ['crc32c', 'md5'] as const) {
      const hash = createHash('sha256');
      await pipeline(file.createReadStream({ validation }), hash);
      expect(hash.digest('hex')).toBe(sha256(data));
    }
  });

  it('downloads byte ranges, open ranges and suffixes identical to the source', async () => {
    const data = randomBytes(300_000);
    const file = bucket.file('ranges.bin');
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
      const file = bucket.file(`empty-${resumable}.txt`);
      await file.save('', { resumable });
      expect((await file.getMetadata())[0].size).toBe('0');
      expect((await file.download())[0].length).toBe(0);
    }
  });

  it('answers exists() true for a stored object and false for a missing one', async () => {
    await bucket.file('exists.txt').save('1');
    expect(await bucket.file('exists.txt').exists()).toEqual([true]);
    expect(await bucket.file('missing.txt').exists()).toEqual([false]);
  });

  it('refuses an upload with ifGenerationMatch 0 when the object exists (412)', async () => {
    const file = bucket.file('precondition.txt');
    await file.save('first', { preconditionOpts: { ifGenerationMatch: 0 } });
    for (const resumable of [true, false]) {
      await expect(
        file.save('second', { resumable, preconditionOpts: { ifGenerationMatch: 0 } }),
      ).rejects.toMatchObject({ code: 412 });
    }
    expect((await file.download())[0].toString()).toBe('first');
  });

  it('replaces an object when ifGenerationMatch names its current generation', async () => {
    const file = bucket.file('generation.txt');
    await file.save('v1');
    const [meta] = await file.getMetadata();
    await file.save('v2', { preconditionOpts: { ifGenerationMatch: Number(meta.generation) } });
    expect((await file.download())[0].toString()).toBe('v2');
  });
});

describe('errors', () => {
  it('surfaces a missing object as err.code 404 through the SDK', async () => {
    await expect(bucket.file('nope.txt').getMetadata()).rejects.toMatchObject({
      code: 404,
      message: `No such object: ${BUCKET}/nope.txt`,
    });
  });

  it("answers a missing object with Google's JSON error body", async () => {
    const res = await fetch(objectUrl('nope.txt'));
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({
      error: {
        code: 404,
        message: `No such object: ${BUCKET}/nope.txt`,
        errors: [
          { domain: 'global', reason: 'notFound', message: `No such object: ${BUCKET}/nope.txt` },
        ],
      },
    });
  });

  it('answers an unknown bucket with 404 notFound', async () => {
    const res = await fetch(`${emulator.url}/storage/v1/b/no-such-bucket/o`);
    expect(res.status).toBe(404);
    expect(
      ((await res.json()) as { error: { errors: [{ reason: string }] } }).error.errors[0].reason,
    ).toBe('notFound');
  });
});

describe('media downloads on the wire', () => {
  const data = Buffer.from('0123456789abcdefghij');
  let generation: string;

  beforeAll(async () => {
    const res = await uploadRaw('wire/media.txt', data);
    generation = ((await res.json()) as { generation: string }).generation;
  });

  it('sends the x-goog-* headers the SDK validates with', async () => {
    const res = await fetch(objectUrl('wire/media.txt', '?alt=media'));
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(data);
    expect(res.headers.get('x-goog-hash')).toBe(
      `crc32c=${crc32cToBase64(crc32c(data))},md5=${md5Base64(data)}`,
    );
    expect(res.headers.get('x-goog-generation')).toBe(generation);
    expect(res.headers.get('x-goog-stored-content-length')).toBe('20');
    expect(res.headers.get('x-goog-stored-content-encoding')).toBe('identity');
    expect(res.headers.get('content-length')).toBe('20');
  });

  it('answers a range with 206 and Content-Range', async () => {
    const res = await fetch(objectUrl('wire/media.txt', '?alt=media'), {
      headers: { Range: 'bytes=2-5' },
    });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 2-5/20');
    expect(await res.text()).toBe('2345');
  });

  it('answers a suffix range with the last bytes', async () => {
    const res = await fetch(objectUrl('wire/media.txt', '?alt=media'), {
      headers: { Range: 'bytes=-3' },
    });
    expect(res.status).toBe(206);
    expect(await res.text()).toBe('hij');
  });

  it('answers a range past the end with 416 requestedRangeNotSatisfiable', async () => {
    const res = await fetch(objectUrl('wire/media.txt', '?alt=media'), {
      headers: { Range: 'bytes=20-' },
    });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */20');
    const body = (await res.json()) as { error: { code: number; errors: [{ reason: string }] } };
    expect(body.error.code).toBe(416);
    expect(body.error.errors[0].reason).toBe('requestedRangeNotSatisfiable');
  });

  it('refuses a read whose ifGenerationMatch is not the live generation (412)', async () => {
    const res = await fetch(objectUrl('wire/media.txt', '?alt=media&ifGenerationMatch=1'));
    expect(res.status).toBe(412);
    const ok = await fetch(
      objectUrl('wire/media.txt', `?alt=media&ifGenerationMatch=${generation}`),
    );
    expect(ok.status).toBe(200);
  });

  it('serves the same object on the paths used with STORAGE_EMULATOR_HOST and in mediaLink', async () => {
    const short = await fetch(
      `${emulator.url}/b/${BUCKET}/o/${encodeURIComponent('wire/media.txt')}`,
    );
    expect(((await short.json()) as { name: string }).name).toBe('wire/media.txt');
    const meta = (await (await fetch(objectUrl('wire/media.txt'))).json()) as { mediaLink: string };
    expect(await (await fetch(meta.mediaLink)).text()).toBe(data.toString());
  });

  it('sends gzip objects as stored to clients that accept gzip and decompressed to others', async () => {
    const text = 'compressible '.repeat(100);
    await uploadRaw('wire/log.gz', gzipSync(text), '&contentEncoding=gzip');
    const get = (acceptEncoding: string | undefined) =>
      new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        const url = new URL(objectUrl('wire/log.gz', '?alt=media'));
        const req = httpRequest(
          url,
          { headers: acceptEncoding ? { 'Accept-Encoding': acceptEncoding } : {} },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end();
      });
    const raw = await get('gzip');
    expect(raw.headers['content-encoding']).toBe('gzip');
    expect(raw.headers['x-goog-stored-content-encoding']).toBe('gzip');
    expect(raw.body).toEqual(gzipSync(text));
    const plain = await get(undefined);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.toString()).toBe(text);
  });
});

describe('multipart uploads on the wire', () => {
  function multipart(metadata: object, media: Buffer): { body: Buffer; contentType: string } {
    const boundary = 'b0undary';
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n`),
      Buffer.from(JSON.stringify(metadata)),
      Buffer.from(`\r\n--${boundary}\r\nContent-Type: text/plain\r\n\r\n`),
      media,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    return { body, contentType: `multipart/related; boundary=${boundary}` };
  }
  const post = (m: { body: Buffer; contentType: string }) =>
    fetch(`${emulator.url}/upload/storage/v1/b/${BUCKET}/o?uploadType=multipart`, {
      method: 'POST',
      headers: { 'Content-Type': m.contentType },
      body: m.body,
    });

  it('takes name and checksums from the metadata part and the media type from the media part', async () => {
    const media = Buffer.from('line 1\r\n--not a boundary\r\nline 2');
    const res = await post(
      multipart(
        { name: 'mp/ok.txt', crc32c: crc32cToBase64(crc32c(media)), md5Hash: md5Base64(media) },
        media,
      ),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      name: 'mp/ok.txt',
      contentType: 'text/plain',
      size: String(media.length),
    });
    expect((await bucket.file('mp/ok.txt').download())[0]).toEqual(media);
  });

  it('stores an empty media part as an empty object', async () => {
    const res = await post(multipart({ name: 'mp/empty.txt' }, Buffer.alloc(0)));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ size: '0', md5Hash: md5Base64(Buffer.alloc(0)) });
  });

  it('takes a body as Google’s CLI sends it: the boundary in single quotes, lines ending in LF', async () => {
    // What `gcloud storage cp` (apitools and Python's email generator) posts, byte for byte.
    const boundary = '===============7076011107596643666==';
    const media = Buffer.from('hello\r\nworld\n\n--not the boundary\n');
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\nContent-Type: application/json\nMIME-Version: 1.0\n\n`),
      Buffer.from(
        '{"bucket": "emulator-test", "contentType": "text/plain", "name": "mp/gcloud.txt"}',
      ),
      Buffer.from(`\n--${boundary}\nContent-Type: text/plain\nMIME-Version: 1.0\n`),
      Buffer.from('Content-Transfer-Encoding: binary\n\n'),
      media,
      Buffer.from(`\n--${boundary}--`),
    ]);
    const res = await post({ body, contentType: `multipart/related; boundary='${boundary}'` });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: 'mp/gcloud.txt', contentType: 'text/plain' });
    expect((await bucket.file('mp/gcloud.txt').download())[0]).toEqual(media);
  });

  it('takes the boundary in double quotes', async () => {
    const m = multipart({ name: 'mp/quoted.txt' }, Buffer.from('quoted\n'));
    const res = await post({ ...m, contentType: 'multipart/related; boundary="b0undary"' });
    expect(res.status).toBe(200);
    expect((await bucket.file('mp/quoted.txt').download())[0].toString()).toBe('quoted\n');
  });

  it('refuses a body whose md5Hash does not match (400) and stores nothing', async () => {
    const res = await post(
      multipart(
        { name: 'mp/bad.txt', md5Hash: md5Base64(Buffer.from('other')) },
        Buffer.from('data'),
      ),
    );
    expect(res.status).toBe(400);
    expect(await bucket.file('mp/bad.txt').exists()).toEqual([false]);
  });
});

describe('resumable sessions on the wire', () => {
  const chunk = (n: number, fill: number) => Buffer.alloc(n, fill);

  it('starts a session posted to /resumable/upload/storage/v1/…, as Google’s CLI does', async () => {
    const res = await fetch(
      `${emulator.url}/resumable/upload/storage/v1/b/${BUCKET}/o?alt=json&uploadType=resumable`,
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Upload-Content-Length': '3' },
        body: JSON.stringify({ name: 'rs/gcloud.bin', contentType: 'application/octet-stream' }),
      },
    );
    expect(res.status).toBe(200);
    const done = await putChunk(res.headers.get('location')!, 'bytes 0-2/3', chunk(3, 7));
    expect(done.status).toBe(200);
    expect((await bucket.file('rs/gcloud.bin').download())[0]).toEqual(chunk(3, 7));
  });

  it('answers a status query on a fresh session with 308 and no Range', async () => {
    const session = await startSession('rs/fresh.bin');
    const res = await putChunk(session, 'bytes */*');
    expect(res.status).toBe(308);
    expect(res.headers.get('range')).toBeNull();
  });

  it('persists 256 KiB chunks, reports them in Range, and completes on the final chunk', async () => {
    const session = await startSession('rs/chunks.bin');
    const first = chunk(256 * KiB, 1);
    const res1 = await putChunk(session, 'bytes 0-262143/*', first);
    expect(res1.status).toBe(308);
    expect(res1.headers.get('range')).toBe('bytes=0-262143');
    const status = await putChunk(session, 'bytes */*');
    expect(status.headers.get('range')).toBe('bytes=0-262143');
    const last = chunk(10, 2);
    const done = await putChunk(session, 'bytes 262144-262153/262154', last);
    expect(done.status).toBe(200);
    expect(await done.json()).toMatchObject({ name: 'rs/chunks.bin', size: '262154' });
    expectSameBytes(
      (await bucket.file('rs/chunks.bin').download())[0],
      Buffer.concat([first, last]),
    );
  });

  it('refuses a non-final chunk that is not a multiple of 256 KiB (400)', async () => {
    const session = await startSession('rs/unaligned.bin');
    const res = await putChunk(session, 'bytes 0-99999/*', chunk(100_000, 1));
    expect(res.status).toBe(400);
    expect((await putChunk(session, 'bytes */*')).headers.get('range')).toBeNull();
  });

  it('accepts a chunk that overlaps persisted bytes and keeps only the new part', async () => {
    const session = await startSession('rs/overlap.bin');
    const a = chunk(256 * KiB, 1);
    const b = chunk(256 * KiB, 2);
    await putChunk(session, 'bytes 0-262143/*', a);
    const res = await putChunk(
      session,
      'bytes 0-524287/*',
      Buffer.concat([chunk(256 * KiB, 9), b]),
    );
    expect(res.headers.get('range')).toBe('bytes=0-524287');
    await putChunk(session, 'bytes */524288');
    expectSameBytes((await bucket.file('rs/overlap.bin').download())[0], Buffer.concat([a, b]));
  });

  it('persists nothing from a chunk answered with an injected 503', async () => {
    const session = await startSession('rs/failed.bin');
    await putChunk(session, 'bytes 0-262143/*', chunk(256 * KiB, 1));
    emulator.faults.add({
      match: { method: 'PUT', path: 'upload_id=' },
      action: { status: 503 },
      times: 1,
    });
    expect((await putChunk(session, 'bytes 262144-524287/*', chunk(256 * KiB, 2))).status).toBe(
      503,
    );
    expect((await putChunk(session, 'bytes */*')).headers.get('range')).toBe('bytes=0-262143');
  });

  it('persists a chunk whose answer is lost with resetAfterCommit', async () => {
    const session = await startSession('rs/uncertain.bin');
    emulator.faults.add({
      match: { method: 'PUT', path: 'upload_id=' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await expect(putChunk(session, 'bytes 0-262143/*', chunk(256 * KiB, 1))).rejects.toThrow();
    expect((await putChunk(session, 'bytes */*')).headers.get('range')).toBe('bytes=0-262143');
  });

  it('refuses a final chunk whose X-Goog-Hash crc32c is wrong and keeps the earlier bytes', async () => {
    const session = await startSession('rs/badhash.bin');
    await putChunk(session, 'bytes 0-262143/*', chunk(256 * KiB, 1));
    const res = await putChunk(session, 'bytes 262144-262147/262148', chunk(4, 2), {
      'X-Goog-Hash': `crc32c=${crc32cToBase64(0)}`,
    });
    expect(res.status).toBe(400);
    expect((await putChunk(session, 'bytes */*')).headers.get('range')).toBe('bytes=0-262143');
    expect(await bucket.file('rs/badhash.bin').exists()).toEqual([false]);
  });

  it('answers a completed session with the object again', async () => {
    const session = await startSession('rs/again.bin');
    const done = (await (await putChunk(session, 'bytes 0-2/3', Buffer.from('abc'))).json()) as {
      generation: string;
    };
    const again = await putChunk(session, 'bytes */*');
    expect(again.status).toBe(200);
    expect(((await again.json()) as { generation: string }).generation).toBe(done.generation);
  });

  it('cancels a session on DELETE with 499, and answers 499 afterwards', async () => {
    const session = await startSession('rs/cancel.bin');
    expect((await fetch(session, { method: 'DELETE' })).status).toBe(499);
    expect((await putChunk(session, 'bytes 0-2/3', Buffer.from('abc'))).status).toBe(499);
    expect(await bucket.file('rs/cancel.bin').exists()).toEqual([false]);
  });
});

describe('listing', () => {
  beforeAll(async () => {
    for (const name of ['list/a/1', 'list/a/2', 'list/b/1', 'list/top', 'list/zz', 'other']) {
      expect((await uploadRaw(name, name)).status).toBe(200);
    }
  });

  it('lists objects under a prefix in lexicographic order', async () => {
    const [files] = await bucket.getFiles({ prefix: 'list/' });
    expect(files.map((f) => f.name)).toEqual([
      'list/a/1',
      'list/a/2',
      'list/b/1',
      'list/top',
      'list/zz',
    ]);
  });

  it('groups names under prefixes with a delimiter', async () => {
    const [files, , response] = await bucket.getFiles({
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
        await bucket.getFiles(query);
      expect(files.length).toBeLessThanOrEqual(2);
      names.push(...files.map((f) => f.name));
      query = next;
      pages++;
    }
    expect(pages).toBe(3);
    expect(names).toEqual(['list/a/1', 'list/a/2', 'list/b/1', 'list/top', 'list/zz']);
  });

  it('honours startOffset (inclusive) and endOffset (exclusive)', async () => {
    const [files] = await bucket.getFiles({
      prefix: 'list/',
      startOffset: 'list/a/2',
      endOffset: 'list/top',
    });
    expect(files.map((f) => f.name)).toEqual(['list/a/2', 'list/b/1']);
  });

  it('follows page tokens across more than 1000 objects with autoPaginate', async () => {
    const names = Array.from({ length: 1005 }, (_, i) => `many/${String(i).padStart(4, '0')}`);
    for (let at = 0; at < names.length; at += 100) {
      await Promise.all(names.slice(at, at + 100).map((n) => uploadRaw(n, 'x')));
    }
    const before = emulator.requestLog.length;
    const [files] = await bucket.getFiles({ prefix: 'many/' });
    expect(files.map((f) => f.name)).toEqual(names);
    const lists = emulator.requestLog
      .slice(before)
      .filter((r) => r.method === 'GET' && r.path.includes('/o?'));
    expect(lists).toHaveLength(2);
  });
});

describe('compose', () => {
  it('concatenates 3 sources with a combined crc32c, no md5Hash and componentCount 3', async () => {
    const parts = [randomBytes(1000), randomBytes(300_000), randomBytes(7)];
    await Promise.all(parts.map((p, i) => bucket.file(`compose/part-${i}`).save(p)));
    const [dest] = await bucket.combine(
      [0, 1, 2].map((i) => `compose/part-${i}`),
      'compose/whole',
    );
    const [meta] = await dest.getMetadata();
    const whole = Buffer.concat(parts);
    expect(meta.crc32c).toBe(crc32cToBase64(crc32c(whole)));
    expect(meta.md5Hash).toBeUndefined();
    expect(meta.componentCount).toBe(3);
    expect(meta.size).toBe(String(whole.length));
    expectSameBytes((await dest.download({ validation: 'crc32c' }))[0], whole);
  });

  it("refuses 33 sources with 400 and Google's message", async () => {
    await bucket.file('compose/one').save('1');
    await expect(
      bucket.combine(
        Array.from({ length: 33 }, () => 'compose/one'),
        'compose/too-many',
      ),
    ).rejects.toMatchObject({
      code: 400,
      message: 'The number of source components provided (33) exceeds the maximum (32)',
    });
  });

  it('answers 404 when a source is missing', async () => {
    await bucket.file('compose/one').save('1');
    await expect(
      bucket.combine(['compose/one', 'compose/absent'], 'compose/x'),
    ).rejects.toMatchObject({
      code: 404,
    });
  });

  it('refuses a destination that exists when ifGenerationMatch is 0 (412)', async () => {
    await bucket.file('compose/one').save('1');
    const res = await fetch(`${objectUrl('compose/one')}/compose?ifGenerationMatch=0`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ sourceObjects: [{ name: 'compose/one' }], destination: {} }),
    });
    expect(res.status).toBe(412);
  });
});

describe('delete', () => {
  it('deletes an object with 204 and answers 404 for it afterwards', async () => {
    await bucket.file('del/x').save('x');
    const res = await fetch(objectUrl('del/x'), { method: 'DELETE' });
    expect(res.status).toBe(204);
    await expect(bucket.file('del/x').delete()).rejects.toMatchObject({ code: 404 });
  });
});

describe('faults seen through the SDK', () => {
  it('retries a 503 once and succeeds', async () => {
    await bucket.file('fault/503.txt').save('ok');
    const rule = emulator.faults.add({
      match: { method: 'GET', path: 'fault%2F503.txt' },
      action: { status: 503 },
      times: 1,
    });
    const [meta] = await bucket.file('fault/503.txt').getMetadata();
    expect(meta.size).toBe('2');
    expect(rule.hits).toBe(1);
    const statuses = emulator.requestLog
      .filter((r) => r.path.includes('fault%2F503.txt'))
      .map((r) => r.status);
    expect(statuses.slice(-2)).toEqual([503, 200]);
  });

  it('resumes a chunked upload whose connection drops mid-way and stores it byte-identical', async () => {
    const data = randomBytes(3 * MiB + 17);
    const file = bucket.file('fault/reset.bin');
    emulator.faults.add({
      match: { method: 'PUT', uploadType: 'resumable', path: 'fault%2Freset.bin' },
      action: { reset: true },
      skip: 1,
      times: 1,
    });
    await file.save(data, { chunkSize: MiB, preconditionOpts: { ifGenerationMatch: 0 } });
    const puts = emulator.requestLog.filter(
      (r) => r.method === 'PUT' && r.path.includes('fault%2Freset.bin'),
    );
    expect(puts.map((r) => r.status)).toContain(0);
    expect(puts.at(-1)?.status).toBe(200);
    expectSameBytes((await file.download())[0], data);
  });

  it('finishes an upload whose chunk was stored but whose answer was lost', async () => {
    const data = randomBytes(2 * MiB + 5);
    const file = bucket.file('fault/uncertain.bin');
    emulator.faults.add({
      match: { method: 'PUT', uploadType: 'resumable', path: 'fault%2Funcertain.bin' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await file.save(data, { chunkSize: MiB, preconditionOpts: { ifGenerationMatch: 0 } });
    expectSameBytes((await file.download())[0], data);
  });

  it('cuts a download after truncateBodyAfter bytes', async () => {
    await uploadRaw('fault/cut.bin', randomBytes(100_000));
    emulator.faults.add({
      match: { path: 'fault%2Fcut.bin' },
      action: { truncateBodyAfter: 1000 },
      times: 1,
    });
    const res = await fetch(objectUrl('fault/cut.bin', '?alt=media'));
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
  });

  it('takes fault rules over HTTP from another process', async () => {
    await uploadRaw('fault/http.txt', 'x');
    const add = await fetch(`${emulator.url}/_emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({
        match: { path: 'fault%2Fhttp.txt' },
        action: { status: 429 },
        times: 1,
      }),
    });
    expect(add.status).toBe(200);
    expect((await fetch(objectUrl('fault/http.txt'))).status).toBe(429);
    expect((await fetch(objectUrl('fault/http.txt'))).status).toBe(200);
    await fetch(`${emulator.url}/_emulator/faults`, {
      method: 'POST',
      body: JSON.stringify({ match: { path: 'fault%2Fhttp.txt' }, action: { status: 500 } }),
    });
    expect((await fetch(`${emulator.url}/_emulator/faults`, { method: 'DELETE' })).status).toBe(
      204,
    );
    expect((await fetch(objectUrl('fault/http.txt'))).status).toBe(200);
  });
});
