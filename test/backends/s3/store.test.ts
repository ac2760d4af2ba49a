import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  AbortedError,
  type AttemptKey,
  BackendUnavailableError,
  IntegrityError,
  InvalidInputError,
  type LogStore,
  NotFoundError,
} from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store, type S3StoreOptions } from '../../../packages/core/src/stores/s3/store.js';
import { runningPrefix } from '../../../packages/core/src/stores/shared/chunk-layout.js';
import { sha256 } from '../../support/hash.js';
import { noise, writeTestLog } from '../../support/logs.js';
import { type S3rverFixture, startS3rver } from '../../support/s3rver.js';
import { memoryJournal } from '../../support/stores.js';
import { makeTempDir, removeTempDir } from '../../support/temp-dir.js';
import { key, MiB, rawClient, storeOptions } from './s3-fixture.js';

let server: S3rverFixture;
let raw: S3Client;
let tmp: string;
const open: LogStore[] = [];

beforeAll(async () => {
  server = await startS3rver();
  raw = rawClient(server);
  tmp = await makeTempDir('s3');
});

afterAll(async () => {
  await Promise.all(open.map((s) => s.close()));
  raw.destroy();
  await server.close();
  await removeTempDir(tmp);
});

/** A store on a prefix of its own, so every test starts empty. */
function makeStore(options: Partial<S3StoreOptions> = {}): S3Store {
  const store = new S3Store(storeOptions(server, options));
  open.push(store);
  return store;
}

/** Airflow's S3 task handler key for `key()` below `prefix`. */
function airflowKey(prefix: string, k: AttemptKey = key()): string {
  const map = k.mapIndex >= 0 ? `map_index=${k.mapIndex}/` : '';
  return `${prefix}/dag_id=${k.dagId}/run_id=${k.runId}/task_id=${k.taskId}/${map}attempt=${k.tryNumber}.log`;
}

async function rawGet(k: string) {
  const res = await raw.send(new GetObjectCommand({ Bucket: server.bucket, Key: k }));
  return { res, body: Buffer.from(await res.Body!.transformToByteArray()) };
}

describe('S3Store URLs', () => {
  it('puts logs at prefix/<relative path>, like Airflow, ignoring a trailing slash', () => {
    const store = S3Store.fromUrl('s3://my-bucket/airflow/logs/', {});
    expect(store.bucket).toBe('my-bucket');
    expect(store.prefix).toBe('airflow/logs');
    expect(store.url).toBe('s3://my-bucket/airflow/logs');
  });

  it('puts logs at the bucket root when the URL has no prefix', () => {
    const store = S3Store.fromUrl('s3://my-bucket', {});
    expect(store.prefix).toBe('');
    expect(store.url).toBe('s3://my-bucket');
  });

  it('rejects a URL without a bucket or with a query with InvalidInputError', () => {
    expect(() => S3Store.fromUrl('s3:///logs', {})).toThrow(InvalidInputError);
    expect(() => S3Store.fromUrl('s3://bkt/logs?x=1', {})).toThrow(InvalidInputError);
    expect(() => S3Store.fromUrl('s3://bkt/a//c', {})).toThrow(InvalidInputError);
  });

  it('reports gzip stores as not seekable', () => {
    expect(S3Store.fromUrl('s3://bkt/p', { compression: 'gzip' }).capabilities).toEqual({
      liveAppend: true,
      seekableReads: false,
    });
  });
});

describe('S3Store layout', () => {
  it('keeps chunk objects beside Airflow’s key while the attempt runs and one plain-text object at it after finish', async () => {
    const store = makeStore();
    const content = Buffer.from('first line\nsecond é line\n');
    const writer = await store.openWriter(key());
    await writer.append(content.subarray(0, 11));
    await writer.flush();
    await writer.append(content.subarray(11));
    await writer.flush();
    const final = airflowKey(store.prefix);
    const folder = final.slice(0, final.lastIndexOf('/') + 1);
    expect(runningPrefix(final)).toBe(`${folder}.attempt=1.log.chunks/`);
    expect(await server.listKeys(folder)).toEqual([
      `${folder}.attempt=1.log.chunks/00000000000000000000.chunk`,
      `${folder}.attempt=1.log.chunks/00000000000000000011.chunk`,
    ]);
    // What Airflow's reader lists for the attempt: nothing until the log is finished.
    expect(await server.listKeys(final)).toEqual([]);

    await writer.finish({ size: content.length, sha256: sha256(content) });
    expect(await server.listKeys(store.prefix)).toEqual([final]);
    const { res, body } = await rawGet(final);
    expect(body.equals(content)).toBe(true);
    expect(res.ContentEncoding).toBeUndefined();
    expect(res.ContentType).toBe('text/plain; charset=utf-8');
    expect(res.Metadata).toEqual({
      'tasklog-size': String(content.length),
      'tasklog-sha256': sha256(content),
    });
    expect(await store.stat(key())).toMatchObject({
      size: content.length,
      complete: true,
      sha256: sha256(content),
    });
  });

  it('finishes a log larger than 5 MiB made of chunks of at least 5 MiB', async () => {
    const store = makeStore({ flushBytes: 6 * MiB });
    const content = noise(13 * MiB + 123);
    const writer = await store.openWriter(key());
    for (let at = 0; at < content.length; at += MiB) {
      await writer.append(content.subarray(at, at + MiB));
    }
    // Two automatic flushes, each ending on the last line end of a full buffer.
    expect(writer.committedOffset).toBeGreaterThan(12 * MiB - 4096);
    expect(writer.committedOffset).toBeLessThanOrEqual(12 * MiB);
    expect(content[writer.committedOffset - 1]).toBe(0x0a);
    await writer.finish({ size: content.length, sha256: sha256(content) });
    const final = airflowKey(store.prefix);
    expect(await server.listKeys(store.prefix)).toEqual([final]);
    // s3rver names a multipart object by the MD5 of all its bytes, where S3 answers
    // md5(part MD5s)-N; the store accepts either after checking it.
    const head = await raw.send(new HeadObjectCommand({ Bucket: server.bucket, Key: final }));
    expect(head.ContentLength).toBe(content.length);
    expect(sha256(await readAll(store, key()))).toBe(sha256(content));
  });

  it('finishes a log made of many small chunks (time-based flushes)', async () => {
    const store = makeStore();
    const content = noise(6 * MiB + 777, 7);
    const writer = await store.openWriter(key());
    const piece = 64 * 1024 + 3;
    for (let at = 0; at < content.length; at += piece) {
      await writer.append(content.subarray(at, at + piece));
      await writer.flush();
    }
    expect((await server.listKeys(runningPrefix(airflowKey(store.prefix)))).length).toBeGreaterThan(
      90,
    );
    await writer.finish({ size: content.length, sha256: sha256(content) });
    expect(await server.listKeys(store.prefix)).toEqual([airflowKey(store.prefix)]);
    expect(sha256(await readAll(store, key()))).toBe(sha256(content));
    expect(
      (await readAll(store, key(), { offset: 5 * MiB - 1, end: 5 * MiB + 2 })).equals(
        content.subarray(5 * MiB - 1, 5 * MiB + 2),
      ),
    ).toBe(true);
  });

  it('reads a running attempt whose chunks span several listing pages', async () => {
    const store = makeStore({ listPageSize: 10 });
    const content = noise(25 * 100, 3);
    const writer = await store.openWriter(key());
    for (let at = 0; at < content.length; at += 100) {
      await writer.append(content.subarray(at, at + 100));
      await writer.flush();
    }
    expect(await store.stat(key())).toMatchObject({ size: content.length, complete: false });
    expect((await readAll(store, key(), { offset: 950 })).equals(content.subarray(950))).toBe(true);
    const resumed = await makeStore({ prefix: store.prefix, listPageSize: 10 }).openWriter(key());
    expect(resumed.committedOffset).toBe(content.length);
    await resumed.abort();
    await writer.abort();
  });
});

describe('S3Store.upload', () => {
  it('stores a 30 MB file as one verified object', async () => {
    const store = makeStore();
    const file = path.join(tmp, 'upload-30mb.log');
    const digest = await writeTestLog(file, 30_000_000, 11);
    const progress: number[] = [];
    await store.upload(
      key(),
      { path: file, ...digest },
      { onProgress: (done) => progress.push(done) },
    );
    expect(progress.at(-1)).toBe(digest.size);
    expect(await store.stat(key())).toMatchObject({
      size: digest.size,
      complete: true,
      sha256: digest.sha256,
    });
    const { body } = await rawGet(airflowKey(store.prefix));
    expect(sha256(body)).toBe(digest.sha256);
  });

  it('resumes an interrupted upload from its journal, sending only the missing parts', async () => {
    const store = makeStore({ partSize: 5 * MiB });
    const file = path.join(tmp, 'upload-resume.log');
    const digest = await writeTestLog(file, 30_000_000, 12);
    const parts = Math.ceil(digest.size / (5 * MiB));
    const journal = memoryJournal();

    const stop = new AbortController();
    const first = store.upload(
      key(),
      { path: file, ...digest },
      {
        journal,
        signal: stop.signal,
        onProgress: (done) => {
          if (done > 0) stop.abort();
        },
      },
    );
    await expect(first).rejects.toBeInstanceOf(AbortedError);
    const kept = (journal.state as { parts: unknown[] }).parts.length;
    expect(kept).toBeGreaterThanOrEqual(1);
    expect(kept).toBeLessThan(parts);
    expect(await store.stat(key())).toBeUndefined();

    const calls: number[] = [];
    await store.upload(
      key(),
      { path: file, ...digest },
      { journal, onProgress: (done) => calls.push(done) },
    );
    // One report at the start (what was already there), then one per part sent.
    expect(calls[0]).toBe(kept * 5 * MiB);
    expect(calls.length - 1).toBe(parts - kept);
    expect(journal.state).toBeNull();
    const { body } = await rawGet(airflowKey(store.prefix));
    expect(body.equals(await readFile(file))).toBe(true);
  });

  it('stores an empty file', async () => {
    const store = makeStore();
    const file = path.join(tmp, 'empty.log');
    const digest = await writeTestLog(file, 0);
    await store.upload(key(), { path: file, ...digest });
    expect(await store.stat(key())).toMatchObject({ size: 0, complete: true });
    expect((await readAll(store, key())).length).toBe(0);
  });

  it('removes the chunks a writer left for the attempt', async () => {
    const store = makeStore();
    const writer = await store.openWriter(key());
    await writer.append(Buffer.from('partial'));
    await writer.flush();
    await writer.abort();
    const file = path.join(tmp, 'small.log');
    const digest = await writeTestLog(file, 10_000, 3);
    await store.upload(key(), { path: file, ...digest });
    expect(await server.listKeys(store.prefix)).toEqual([airflowKey(store.prefix)]);
  });
});

describe('S3Store with gzip', () => {
  it('stores a finished log gzip-encoded and reads it back exactly from any offset', async () => {
    const store = makeStore({ compression: 'gzip' });
    const content = Buffer.from(Array.from({ length: 2000 }, (_, i) => `line ${i} é€𝄞\n`).join(''));
    const writer = await store.openWriter(key());
    await writer.append(content.subarray(0, 1000));
    await writer.flush();
    await writer.append(content.subarray(1000));
    await writer.finish({ size: content.length, sha256: sha256(content) });

    const { res, body } = await rawGet(airflowKey(store.prefix));
    expect(res.ContentEncoding).toBe('gzip');
    expect(body.length).toBeLessThan(content.length);
    expect(gunzipSync(body).equals(content)).toBe(true);
    expect(await store.stat(key())).toMatchObject({ size: content.length, complete: true });
    for (const offset of [0, 1, 999, 1000, 20_000, content.length - 1, content.length]) {
      expect((await readAll(store, key(), { offset })).equals(content.subarray(offset))).toBe(true);
    }
    expect(
      (await readAll(store, key(), { offset: 10, end: 30 })).equals(content.subarray(10, 30)),
    ).toBe(true);
  });

  it('uploads a finished file gzip-encoded', async () => {
    const store = makeStore({ compression: 'gzip' });
    const file = path.join(tmp, 'gzip-upload.log');
    const digest = await writeTestLog(file, 3_000_000, 5);
    await store.upload(key(), { path: file, ...digest });
    const { res, body } = await rawGet(airflowKey(store.prefix));
    expect(res.ContentEncoding).toBe('gzip');
    expect(sha256(gunzipSync(body))).toBe(digest.sha256);
    expect(await store.stat(key())).toMatchObject({ size: digest.size, sha256: digest.sha256 });
  });
});

describe('S3Store and Airflow', () => {
  it('reads, stats and lists a log Airflow’s S3 task handler wrote', async () => {
    const store = makeStore();
    const content = Buffer.from('[2024-01-01T00:00:00] {taskinstance.py:1} INFO - hello\n');
    const k = key({ taskId: 'fan_out', mapIndex: 2 });
    // As Airflow writes it: a plain PutObject, no tasklog metadata.
    await raw.send(
      new PutObjectCommand({
        Bucket: server.bucket,
        Key: airflowKey(store.prefix, k),
        Body: content,
      }),
    );
    const stat = await store.stat(k);
    expect(stat).toMatchObject({ size: content.length, complete: true });
    expect(stat?.sha256).toBeUndefined();
    expect((await readAll(store, k)).equals(content)).toBe(true);
    expect((await readAll(store, k, { offset: 25 })).equals(content.subarray(25))).toBe(true);
    const listed: AttemptKey[] = [];
    for await (const found of store.list({ dagId: 'etl' })) listed.push(found);
    expect(listed).toEqual([k]);
  });

  it('lists every attempt across listing pages', async () => {
    const store = makeStore({ listPageSize: 10 });
    for (let i = 1; i <= 25; i++) {
      await raw.send(
        new PutObjectCommand({
          Bucket: server.bucket,
          Key: airflowKey(store.prefix, key({ tryNumber: i })),
          Body: `try ${i}\n`,
        }),
      );
    }
    const tries: number[] = [];
    for await (const found of store.list({ dagId: 'etl', runId: key().runId })) {
      tries.push(found.tryNumber);
    }
    expect(tries.sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
  });
});

describe('S3Store verification', () => {
  for (const compression of ['none', 'gzip'] as const) {
    it(`rejects a resumed writer's finish with a wrong sha256 before storing anything (${compression})`, async () => {
      const store = makeStore({ compression });
      const content = Buffer.from('line one\nline two\n');
      const first = await store.openWriter(key());
      await first.append(content.subarray(0, 9));
      await first.flush();
      await first.abort();
      // This writer did not see byte 0, so finish() must hash what the chunks hold.
      const resumed = await store.openWriter(key());
      await resumed.append(content.subarray(9));
      await expect(
        resumed.finish({ size: content.length, sha256: sha256(Buffer.from('other')) }),
      ).rejects.toBeInstanceOf(IntegrityError);
      expect(await server.listKeys(airflowKey(store.prefix))).toEqual([]);
      expect(await server.listKeys(runningPrefix(airflowKey(store.prefix)))).toEqual([
        `${runningPrefix(airflowKey(store.prefix))}00000000000000000000.chunk`,
        `${runningPrefix(airflowKey(store.prefix))}00000000000000000009.chunk`,
      ]);
      expect(await store.stat(key())).toMatchObject({ size: content.length, complete: false });
    });
  }
});

describe('S3Store errors', () => {
  it('answers ping when the bucket exists', async () => {
    await expect(makeStore().ping()).resolves.toBeUndefined();
  });

  it('reports a missing bucket as BackendUnavailableError naming the bucket', async () => {
    const store = makeStore({ bucket: 'no-such-bucket' });
    await expect(store.ping()).rejects.toThrow(BackendUnavailableError);
    await expect(store.ping()).rejects.toThrow(/no-such-bucket/);
    await expect(readAll(store, key())).rejects.toThrow(/bucket no-such-bucket does not exist/);
  });

  it('reports wrong credentials as BackendUnavailableError', async () => {
    const store = makeStore();
    // s3rver checks the key id but not SigV4 signatures, so a wrong secret would go unnoticed.
    const saved = process.env.AWS_ACCESS_KEY_ID;
    process.env.AWS_ACCESS_KEY_ID = 'AKIAWRONGWRONGWRONG0';
    try {
      await expect(store.ping()).rejects.toThrow(BackendUnavailableError);
      await expect(store.stat(key())).rejects.toThrow(/credentials/);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved;
    }
  });

  it('reports an unreachable endpoint as BackendUnavailableError', async () => {
    const store = makeStore({
      s3: {
        endpoint: 'http://127.0.0.1:9',
        force_path_style: true,
        region: 'us-east-1',
        max_attempts: 1,
      },
    });
    await expect(store.ping()).rejects.toThrow(BackendUnavailableError);
  });

  it('reports a missing attempt as NotFoundError', async () => {
    await expect(readAll(makeStore(), key({ taskId: 'never_ran' }))).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it('stops a read when its signal is aborted', async () => {
    const store = makeStore();
    const writer = await store.openWriter(key());
    await writer.append(noise(1024));
    await writer.finish({ size: 1024, sha256: sha256(noise(1024)) });
    const stop = new AbortController();
    stop.abort();
    const it = store.read(key(), { signal: stop.signal })[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toBeInstanceOf(AbortedError);
  });
});
