import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { crc32c, crc32cToBase64 } from './crc32c.js';
import * as gcs from './gcs-emulator-fixture.js';

// The emulator on the wire: the requests and answers of Google's JSON API, byte for byte.
gcs.startEmulatorForThisFile();

async function startSession(name: string): Promise<string> {
  const res = await fetch(
    `${gcs.emulator.url}/upload/storage/v1/b/${gcs.BUCKET}/o?uploadType=resumable&name=${encodeURIComponent(name)}`,
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

describe('errors', () => {
  it('surfaces a missing object as err.code 404 through the SDK', async () => {
    await expect(gcs.bucket.file('nope.txt').getMetadata()).rejects.toMatchObject({
      code: 404,
      message: `No such object: ${gcs.BUCKET}/nope.txt`,
    });
  });

  it("answers a missing object with Google's JSON error body", async () => {
    const res = await fetch(gcs.objectUrl('nope.txt'));
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({
      error: {
        code: 404,
        message: `No such object: ${gcs.BUCKET}/nope.txt`,
        errors: [
          {
            domain: 'global',
            reason: 'notFound',
            message: `No such object: ${gcs.BUCKET}/nope.txt`,
          },
        ],
      },
    });
  });

  it('answers an unknown bucket with 404 notFound', async () => {
    const res = await fetch(`${gcs.emulator.url}/storage/v1/b/no-such-bucket/o`);
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
    const res = await gcs.uploadRaw('wire/media.txt', data);
    generation = ((await res.json()) as { generation: string }).generation;
  });

  it('sends the x-goog-* headers the SDK validates with', async () => {
    const res = await fetch(gcs.objectUrl('wire/media.txt', '?alt=media'));
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(data);
    expect(res.headers.get('x-goog-hash')).toBe(
      `crc32c=${crc32cToBase64(crc32c(data))},md5=${gcs.md5Base64(data)}`,
    );
    expect(res.headers.get('x-goog-generation')).toBe(generation);
    expect(res.headers.get('x-goog-stored-content-length')).toBe('20');
    expect(res.headers.get('x-goog-stored-content-encoding')).toBe('identity');
    expect(res.headers.get('content-length')).toBe('20');
  });

  it('answers a range with 206 and Content-Range', async () => {
    const res = await fetch(gcs.objectUrl('wire/media.txt', '?alt=media'), {
      headers: { Range: 'bytes=2-5' },
    });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 2-5/20');
    expect(await res.text()).toBe('2345');
  });

  it('answers a suffix range with the last bytes', async () => {
    const res = await fetch(gcs.objectUrl('wire/media.txt', '?alt=media'), {
      headers: { Range: 'bytes=-3' },
    });
    expect(res.status).toBe(206);
    expect(await res.text()).toBe('hij');
  });

  it('answers a range past the end with 416 requestedRangeNotSatisfiable', async () => {
    const res = await fetch(gcs.objectUrl('wire/media.txt', '?alt=media'), {
      headers: { Range: 'bytes=20-' },
    });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */20');
    const body = (await res.json()) as { error: { code: number; errors: [{ reason: string }] } };
    expect(body.error.code).toBe(416);
    expect(body.error.errors[0].reason).toBe('requestedRangeNotSatisfiable');
  });

  it('refuses a read whose ifGenerationMatch is not the live generation (412)', async () => {
    const res = await fetch(gcs.objectUrl('wire/media.txt', '?alt=media&ifGenerationMatch=1'));
    expect(res.status).toBe(412);
    const ok = await fetch(
      gcs.objectUrl('wire/media.txt', `?alt=media&ifGenerationMatch=${generation}`),
    );
    expect(ok.status).toBe(200);
  });

  it('serves the same object on the paths used with STORAGE_EMULATOR_HOST and in mediaLink', async () => {
    const short = await fetch(
      `${gcs.emulator.url}/b/${gcs.BUCKET}/o/${encodeURIComponent('wire/media.txt')}`,
    );
    expect(((await short.json()) as { name: string }).name).toBe('wire/media.txt');
    const meta = (await (await fetch(gcs.objectUrl('wire/media.txt'))).json()) as {
      mediaLink: string;
    };
    expect(await (await fetch(meta.mediaLink)).text()).toBe(data.toString());
  });

  it('sends gzip objects as stored to clients that accept gzip and decompressed to others', async () => {
    const text = 'compressible '.repeat(100);
    await gcs.uploadRaw('wire/log.gz', gzipSync(text), '&contentEncoding=gzip');
    const get = (acceptEncoding: string | undefined) =>
      new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
        const url = new URL(gcs.objectUrl('wire/log.gz', '?alt=media'));
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
    fetch(`${gcs.emulator.url}/upload/storage/v1/b/${gcs.BUCKET}/o?uploadType=multipart`, {
      method: 'POST',
      headers: { 'Content-Type': m.contentType },
      body: m.body,
    });

  it('takes name and checksums from the metadata part and the media type from the media part', async () => {
    const media = Buffer.from('line 1\r\n--not a boundary\r\nline 2');
    const res = await post(
      multipart(
        { name: 'mp/ok.txt', crc32c: crc32cToBase64(crc32c(media)), md5Hash: gcs.md5Base64(media) },
        media,
      ),
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      name: 'mp/ok.txt',
      contentType: 'text/plain',
      size: String(media.length),
    });
    expect((await gcs.bucket.file('mp/ok.txt').download())[0]).toEqual(media);
  });

  it('stores an empty media part as an empty object', async () => {
    const res = await post(multipart({ name: 'mp/empty.txt' }, Buffer.alloc(0)));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ size: '0', md5Hash: gcs.md5Base64(Buffer.alloc(0)) });
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
    expect((await gcs.bucket.file('mp/gcloud.txt').download())[0]).toEqual(media);
  });

  it('takes the boundary in double quotes', async () => {
    const m = multipart({ name: 'mp/quoted.txt' }, Buffer.from('quoted\n'));
    const res = await post({ ...m, contentType: 'multipart/related; boundary="b0undary"' });
    expect(res.status).toBe(200);
    expect((await gcs.bucket.file('mp/quoted.txt').download())[0].toString()).toBe('quoted\n');
  });

  it('refuses a body whose md5Hash does not match (400) and stores nothing', async () => {
    const res = await post(
      multipart(
        { name: 'mp/bad.txt', md5Hash: gcs.md5Base64(Buffer.from('other')) },
        Buffer.from('data'),
      ),
    );
    expect(res.status).toBe(400);
    expect(await gcs.bucket.file('mp/bad.txt').exists()).toEqual([false]);
  });
});

describe('resumable sessions on the wire', () => {
  const chunk = (n: number, fill: number) => Buffer.alloc(n, fill);

  it('starts a session posted to /resumable/upload/storage/v1/…, as Google’s CLI does', async () => {
    const res = await fetch(
      `${gcs.emulator.url}/resumable/upload/storage/v1/b/${gcs.BUCKET}/o?alt=json&uploadType=resumable`,
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Upload-Content-Length': '3' },
        body: JSON.stringify({ name: 'rs/gcloud.bin', contentType: 'application/octet-stream' }),
      },
    );
    expect(res.status).toBe(200);
    const done = await putChunk(res.headers.get('location')!, 'bytes 0-2/3', chunk(3, 7));
    expect(done.status).toBe(200);
    expect((await gcs.bucket.file('rs/gcloud.bin').download())[0]).toEqual(chunk(3, 7));
  });

  it('answers a status query on a fresh session with 308 and no Range', async () => {
    const session = await startSession('rs/fresh.bin');
    const res = await putChunk(session, 'bytes */*');
    expect(res.status).toBe(308);
    expect(res.headers.get('range')).toBeNull();
  });

  it('persists 256 KiB chunks, reports them in Range, and completes on the final chunk', async () => {
    const session = await startSession('rs/chunks.bin');
    const first = chunk(256 * gcs.KiB, 1);
    const res1 = await putChunk(session, 'bytes 0-262143/*', first);
    expect(res1.status).toBe(308);
    expect(res1.headers.get('range')).toBe('bytes=0-262143');
    const status = await putChunk(session, 'bytes */*');
    expect(status.headers.get('range')).toBe('bytes=0-262143');
    const last = chunk(10, 2);
    const done = await putChunk(session, 'bytes 262144-262153/262154', last);
    expect(done.status).toBe(200);
    expect(await done.json()).toMatchObject({ name: 'rs/chunks.bin', size: '262154' });
    gcs.expectSameBytes(
      (await gcs.bucket.file('rs/chunks.bin').download())[0],
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
    const a = chunk(256 * gcs.KiB, 1);
    const b = chunk(256 * gcs.KiB, 2);
    await putChunk(session, 'bytes 0-262143/*', a);
    const res = await putChunk(
      session,
      'bytes 0-524287/*',
      Buffer.concat([chunk(256 * gcs.KiB, 9), b]),
    );
    expect(res.headers.get('range')).toBe('bytes=0-524287');
    await putChunk(session, 'bytes */524288');
    gcs.expectSameBytes(
      (await gcs.bucket.file('rs/overlap.bin').download())[0],
      Buffer.concat([a, b]),
    );
  });

  it('persists nothing from a chunk answered with an injected 503', async () => {
    const session = await startSession('rs/failed.bin');
    await putChunk(session, 'bytes 0-262143/*', chunk(256 * gcs.KiB, 1));
    gcs.emulator.faults.add({
      match: { method: 'PUT', path: 'upload_id=' },
      action: { status: 503 },
      times: 1,
    });
    expect((await putChunk(session, 'bytes 262144-524287/*', chunk(256 * gcs.KiB, 2))).status).toBe(
      503,
    );
    expect((await putChunk(session, 'bytes */*')).headers.get('range')).toBe('bytes=0-262143');
  });

  it('persists a chunk whose answer is lost with resetAfterCommit', async () => {
    const session = await startSession('rs/uncertain.bin');
    gcs.emulator.faults.add({
      match: { method: 'PUT', path: 'upload_id=' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await expect(putChunk(session, 'bytes 0-262143/*', chunk(256 * gcs.KiB, 1))).rejects.toThrow();
    expect((await putChunk(session, 'bytes */*')).headers.get('range')).toBe('bytes=0-262143');
  });

  it('refuses a final chunk whose X-Goog-Hash crc32c is wrong and keeps the earlier bytes', async () => {
    const session = await startSession('rs/badhash.bin');
    await putChunk(session, 'bytes 0-262143/*', chunk(256 * gcs.KiB, 1));
    const res = await putChunk(session, 'bytes 262144-262147/262148', chunk(4, 2), {
      'X-Goog-Hash': `crc32c=${crc32cToBase64(0)}`,
    });
    expect(res.status).toBe(400);
    expect((await putChunk(session, 'bytes */*')).headers.get('range')).toBe('bytes=0-262143');
    expect(await gcs.bucket.file('rs/badhash.bin').exists()).toEqual([false]);
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
    expect(await gcs.bucket.file('rs/cancel.bin').exists()).toEqual([false]);
  });
});
