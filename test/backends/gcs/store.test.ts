import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { CRC32C } from '@google-cloud/storage';
import {
  AbortedError,
  type AttemptKey,
  attemptKey,
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  NotFoundError,
  PathTemplate,
  type UploadJournal,
} from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { describe, expect, it } from 'vitest';
import { digestFile } from '../../../packages/core/src/hashing.js';
import { GcsStore, type GcsStoreOptions } from '../../../packages/core/src/stores/gcs/store.js';
import { chunkName, runningPrefix } from '../../../packages/core/src/stores/shared/chunk-layout.js';
import { sha256 } from '../../support/hash.js';
import { freshName } from '../../support/servers.js';
import { memoryJournal, writeLog, writeRunning } from '../../support/stores.js';
import * as gcs from './gcs-fixture.js';

const KEY = attemptKey({
  dagId: 'etl',
  runId: 'scheduled__2024-01-01T00:00:00+00:00',
  taskId: 'extract',
  mapIndex: -1,
  tryNumber: 1,
});
const REL = new PathTemplate().render(KEY);
const FINAL = `${gcs.PREFIX}/${REL}`;

gcs.useBucketPerTest('store');

function makeStore(overrides: Partial<GcsStoreOptions> = {}): GcsStore {
  return GcsStore.fromUrl(
    `gs://${gcs.bucket}/${gcs.PREFIX}`,
    { gcs: { api_endpoint: gcs.emulator.url, project_id: 'tasklog-test', max_attempts: 3 } },
    { maxRetryDelaySeconds: 1, ...overrides },
  );
}

async function download(name: string): Promise<Buffer> {
  const [bytes] = await gcs.file(name).download();
  return bytes;
}

/** sha256 of an object as the plain SDK streams it. */
async function objectSha256(name: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of gcs.file(name).createReadStream()) hash.update(piece);
  return hash.digest('hex');
}

/** A file of `size` bytes of random base64 text lines: about as compressible as real logs. */
async function bigFile(name: string, size: number): Promise<string> {
  const file = path.join(gcs.tmp, name);
  const out = createWriteStream(file);
  for (let written = 0; written < size; ) {
    const n = Math.min(1 << 20, size - written);
    const piece = Buffer.from(randomBytes(Math.ceil((n * 3) / 4)).toString('base64')).subarray(
      0,
      n,
    );
    for (let i = 99; i < piece.length; i += 100) piece[i] = 0x0a;
    if (!out.write(piece)) await once(out, 'drain');
    written += n;
  }
  out.end();
  await finished(out);
  return file;
}

type Digest = { size: number; sha256: string };

/** Uploads `file` as KEY with `journal`, aborted once more than `bytes` were sent. */
async function uploadAbortedAfter(
  store: GcsStore,
  file: string,
  digest: Digest,
  journal: UploadJournal,
  bytes: number,
): Promise<void> {
  const controller = new AbortController();
  const upload = store.upload(
    KEY,
    { path: file, ...digest },
    {
      journal,
      signal: controller.signal,
      onProgress: (done) => {
        if (done > bytes) controller.abort();
      },
    },
  );
  await expect(upload).rejects.toBeInstanceOf(AbortedError);
}

/** Uploads `file` again with the journal of an aborted upload: it must resume, not restart. */
async function resumeUpload(
  store: GcsStore,
  file: string,
  digest: Digest,
  journal: UploadJournal,
): Promise<void> {
  const progress: number[] = [];
  await store.upload(
    KEY,
    { path: file, ...digest },
    { journal, onProgress: (done) => progress.push(done) },
  );
  expect(progress[0]).toBeGreaterThan(0); // resumed where the session stood, not at byte 0
  expect(progress.at(-1)).toBe(digest.size);
}

/** Whether a request the emulator logged opened a resumable upload session. */
const opensSession = (r: { method: string; path: string }) =>
  r.method === 'POST' && r.path.includes('uploadType=resumable');

describe('GcsStore layout', () => {
  it("stores a finished log as plain text at exactly prefix/<Airflow's relative path>", async () => {
    const store = makeStore();
    const content = Buffer.from('[2024-01-01] task started\nüñí©ødé\n');
    await writeLog(store, KEY, content);

    expect(FINAL).toBe(
      'airflow/logs/dag_id=etl/run_id=scheduled__2024-01-01T00:00:00+00:00/task_id=extract/attempt=1.log',
    );
    expect(await gcs.objectNames(gcs.PREFIX)).toEqual([FINAL]);
    const [meta] = await gcs.file(FINAL).getMetadata();
    expect(meta.contentType).toBe('text/plain; charset=utf-8');
    expect(meta.contentEncoding ?? 'identity').toBe('identity');
    expect(meta.metadata).toMatchObject({
      'tasklog-size': String(content.length),
      'tasklog-sha256': sha256(content),
    });
    expect((await download(FINAL)).equals(content)).toBe(true);
    expect(await store.stat(KEY)).toMatchObject({
      size: content.length,
      complete: true,
      sha256: sha256(content),
    });
  });

  it('keeps chunk objects named by offset beside the log while the attempt runs and removes them on finish', async () => {
    const store = makeStore();
    const writer = await writeRunning(store, KEY, [
      Buffer.from('first\n'),
      Buffer.from('second\n'),
    ]);

    const running = runningPrefix(FINAL);
    expect(running).toBe(`${FINAL.slice(0, FINAL.lastIndexOf('/'))}/.attempt=1.log.chunks/`);
    expect(await gcs.objectNames(running)).toEqual([
      `${running}${chunkName(0)}`,
      `${running}${chunkName(6)}`,
      `${running}running`,
    ]);
    // What Airflow's reader lists for the attempt: nothing until the log is finished.
    expect(await gcs.objectNames(FINAL)).toEqual([]);
    expect(await store.stat(KEY)).toMatchObject({ size: 13, complete: false });

    const content = Buffer.from('first\nsecond\n');
    await writer.finish({ size: content.length, sha256: sha256(content) });
    expect(await gcs.objectNames(gcs.PREFIX)).toEqual([FINAL]);
  });

  it('retries a chunk whose answer was lost with the same bytes, then flushes what came since', async () => {
    const store = makeStore({ maxAttempts: 1 });
    const writer = await store.openWriter(KEY);
    await writer.append(Buffer.from('one\n'));
    // The chunk is stored, but the answer never arrives.
    gcs.emulator.faults.add({
      match: { method: 'POST', uploadType: 'multipart' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await expect(writer.flush()).rejects.toBeInstanceOf(BackendUnavailableError);
    await writer.append(Buffer.from('two\n'));
    // GCS refuses other bytes at the stored chunk's name, so the retry must send the same ones.
    expect(await writer.flush()).toBe(8);
    expect(await gcs.objectNames(runningPrefix(FINAL))).toEqual([
      `${runningPrefix(FINAL)}${chunkName(0)}`,
      `${runningPrefix(FINAL)}${chunkName(4)}`,
      `${runningPrefix(FINAL)}running`,
    ]);
    expect((await readAll(store, KEY)).toString()).toBe('one\ntwo\n');
    await writer.abort();
  });

  it('finishes a log of 70 chunks byte-identical, composing in levels of at most 32', async () => {
    const store = makeStore();
    const pieces = Array.from({ length: 70 }, (_, i) =>
      Buffer.from(`chunk ${i} ${randomBytes(8 + i).toString('hex')}\n`),
    );
    const content = Buffer.concat(pieces);
    const writer = await writeRunning(store, KEY, pieces);
    const logStart = gcs.emulator.requestLog.length;
    await writer.finish({ size: content.length, sha256: sha256(content) });

    const composes = gcs.emulator.requestLog
      .slice(logStart)
      .filter((r) => r.method === 'POST' && r.path.split('?')[0]!.endsWith('/compose'));
    // 70 chunks → 3 intermediates (32 + 32 + 6) → the final object.
    expect(composes).toHaveLength(4);
    expect((await download(FINAL)).equals(content)).toBe(true);
    expect((await readAll(store, KEY)).equals(content)).toBe(true);
    expect(await gcs.objectNames(gcs.PREFIX)).toEqual([FINAL]);
  });
});

describe('GcsStore.upload', () => {
  it('uploads a 20 MB file byte-identical, with the crc32c of the file', async () => {
    const store = makeStore();
    const file = await bigFile('twenty.log', 20 * 1000 * 1000);
    const digest = await digestFile(file);
    await store.upload(KEY, { path: file, ...digest });

    const [meta] = await gcs.file(FINAL).getMetadata();
    expect(Number(meta.size)).toBe(digest.size);
    expect(meta.crc32c).toBe((await CRC32C.fromFile(file)).toString());
    expect(await objectSha256(FINAL)).toBe(digest.sha256);
    expect(await store.stat(KEY)).toMatchObject({
      size: digest.size,
      complete: true,
      sha256: digest.sha256,
    });
  });

  it('resumes an aborted upload in the same session and sends only the missing bytes', async () => {
    const store = makeStore({ uploadChunkSize: 1024 * 1024 });
    const file = await bigFile('aborted.log', 6 * 1024 * 1024 + 123);
    const digest = await digestFile(file);
    const journal = memoryJournal();
    const logStart = gcs.emulator.requestLog.length;

    await uploadAbortedAfter(store, file, digest, journal, 3 * 1024 * 1024);
    const { uri } = journal.state as { uri: string };
    expect(uri).toContain('upload_id=');
    expect(await store.stat(KEY)).toBeUndefined();

    await resumeUpload(store, file, digest, journal);
    expect(await objectSha256(FINAL)).toBe(digest.sha256);

    const requests = gcs.emulator.requestLog.slice(logStart);
    expect(requests.some((r) => r.method === 'PUT' && r.status === 308)).toBe(true);
    expect(requests.filter(opensSession)).toHaveLength(1);
    const uploadId = new URL(uri).searchParams.get('upload_id')!;
    expect(requests.filter((r) => r.path.includes(uploadId)).length).toBeGreaterThan(2);
  });

  it('survives a chunk request whose connection is reset, within one session', async () => {
    const store = makeStore({ uploadChunkSize: 1024 * 1024 });
    const file = await bigFile('reset.log', 3 * 1024 * 1024 + 5);
    const digest = await digestFile(file);
    const fault = gcs.emulator.faults.add({
      match: { method: 'PUT', path: 'upload_id=' },
      action: { reset: true, afterBody: true },
      times: 1,
    });
    const logStart = gcs.emulator.requestLog.length;
    await store.upload(KEY, { path: file, ...digest }, { journal: memoryJournal() });

    expect(fault.hits).toBe(1);
    expect(await objectSha256(FINAL)).toBe(digest.sha256);
    expect(gcs.emulator.requestLog.slice(logStart).filter(opensSession)).toHaveLength(1);
  });

  it('resumes an aborted gzip upload in the same session', async () => {
    const store = makeStore({ compression: 'gzip', uploadChunkSize: 512 * 1024 });
    const file = await bigFile('aborted-gz.log', 6 * 1024 * 1024);
    const digest = await digestFile(file);
    const journal = memoryJournal();
    const logStart = gcs.emulator.requestLog.length;
    await uploadAbortedAfter(store, file, digest, journal, 5.5 * 1024 * 1024);
    const uploadId = new URL((journal.state as { uri: string }).uri).searchParams.get('upload_id')!;
    const stored = (from: number) =>
      gcs.emulator.requestLog
        .slice(from)
        .filter((r) => r.method === 'PUT' && r.path.includes(uploadId) && r.status === 308);
    // Several compressed chunks reached the session before the abort.
    const storedBefore = stored(logStart).length;
    expect(storedBefore).toBeGreaterThanOrEqual(2);

    const resumeStart = gcs.emulator.requestLog.length;
    await resumeUpload(store, file, digest, journal);
    expect(sha256(await readAll(store, KEY))).toBe(digest.sha256);
    const [meta] = await gcs.file(FINAL).getMetadata();
    const chunkRequests = Math.ceil(Number(meta.size) / (512 * 1024));
    const sent = gcs.emulator.requestLog
      .slice(resumeStart)
      .filter((r) => r.method === 'PUT' && r.path.includes(uploadId) && r.status !== 0);
    // One status query, then only the chunks the session did not hold yet; the answer to the
    // request in flight at the abort may be logged late, here. Starting over would take
    // 1 + chunkRequests requests.
    expect(sent.length).toBeLessThanOrEqual(2 + chunkRequests - storedBefore);
    expect(gcs.emulator.requestLog.slice(logStart).filter(opensSession)).toHaveLength(1);
  });

  it('refuses to store a file that does not match its sha256, and creates no object', async () => {
    const store = makeStore({ uploadChunkSize: 256 * 1024 });
    const file = await bigFile('changed.log', 600 * 1024);
    const digest = await digestFile(file);
    const err = await store
      .upload(KEY, { path: file, size: digest.size, sha256: sha256(Buffer.from('other')) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(await gcs.objectNames(gcs.PREFIX)).toEqual([]);
  });

  it('refuses to upload over a finished log with ConflictError', async () => {
    const store = makeStore();
    await gcs.file(FINAL).save('already here\n', { resumable: false });
    const file = await bigFile('conflict.log', 1000);
    const err = await store
      .upload(KEY, { path: file, ...(await digestFile(file)) })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
  });

  it('removes the chunks a crashed writer left once the upload is stored', async () => {
    const store = makeStore();
    await writeRunning(store, KEY, [Buffer.from('partial\n')]);
    const file = await bigFile('after-crash.log', 1000);
    await store.upload(KEY, { path: file, ...(await digestFile(file)) });
    expect(await gcs.objectNames(gcs.PREFIX)).toEqual([FINAL]);
  });

  it('stores a gzip-encoded object when compression is gzip', async () => {
    const store = makeStore({ compression: 'gzip' });
    const file = await bigFile('gz.log', 700 * 1000);
    const digest = await digestFile(file);
    await store.upload(KEY, { path: file, ...digest });

    const [meta] = await gcs.file(FINAL).getMetadata();
    expect(meta.contentEncoding).toBe('gzip');
    expect(Number(meta.size)).toBeLessThan(digest.size);
    expect(sha256(await readAll(store, KEY))).toBe(digest.sha256);
    expect(
      (await readAll(store, KEY, { offset: 500_001 })).equals(
        (await readFile(file)).subarray(500_001),
      ),
    ).toBe(true);
  });
});

describe('GcsStore with gzip', () => {
  it('round-trips a gzip-encoded log and reads it from any offset', async () => {
    const store = makeStore({ compression: 'gzip' });
    const content = Buffer.from(
      Array.from({ length: 2000 }, (_, i) => `line ${i} é€𝄞 ${'x'.repeat(i % 50)}\n`).join(''),
    );
    const writer = await store.openWriter(KEY);
    await writer.append(content.subarray(0, 10_000));
    await writer.flush();
    await writer.append(content.subarray(10_000));
    await writer.finish({ size: content.length, sha256: sha256(content) });

    const [meta] = await gcs.file(FINAL).getMetadata();
    expect(meta.contentEncoding).toBe('gzip');
    const [raw] = await gcs.file(FINAL).download({ decompress: false });
    expect(gunzipSync(raw).equals(content)).toBe(true);
    for (const offset of [0, 1, 9_999, 10_000, 54_321, content.length - 1, content.length]) {
      expect((await readAll(store, KEY, { offset })).equals(content.subarray(offset))).toBe(true);
    }
    expect(await store.stat(KEY)).toMatchObject({ size: content.length, complete: true });
  });
});

describe('Airflow compatibility', () => {
  it("reads, stats and lists a plain object Airflow's GCSTaskHandler wrote", async () => {
    const content = Buffer.from('[2024-01-01, 00:00:00 UTC] {taskinstance.py:1} INFO - hello\n');
    await gcs.file(FINAL).save(content, { resumable: false, contentType: 'text/plain' });
    const store = makeStore();

    expect((await readAll(store, KEY)).equals(content)).toBe(true);
    expect((await readAll(store, KEY, { offset: 27 })).equals(content.subarray(27))).toBe(true);
    const stat = await store.stat(KEY);
    expect(stat).toMatchObject({ size: content.length, complete: true });
    expect(stat?.sha256).toBeUndefined();
    const listed: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'etl' })) listed.push(k);
    expect(listed).toEqual([KEY]);
  });
});

describe('listing', () => {
  it('pages through a listing of 25 attempts with listPageSize 10', async () => {
    const store = makeStore({ listPageSize: 10 });
    const keys = Array.from({ length: 25 }, (_, i) => attemptKey({ ...KEY, tryNumber: i + 1 }));
    for (const k of keys) {
      const body = Buffer.from(`attempt ${k.tryNumber}\n`);
      await gcs.file(`${gcs.PREFIX}/${new PathTemplate().render(k)}`).save(body);
    }
    const logStart = gcs.emulator.requestLog.length;
    const listed: number[] = [];
    for await (const k of store.list({ dagId: 'etl', runId: KEY.runId, taskId: 'extract' })) {
      listed.push(k.tryNumber);
    }
    expect(listed.sort((a, b) => a - b)).toEqual(keys.map((k) => k.tryNumber));
    const lists = gcs.emulator.requestLog
      .slice(logStart)
      .filter(
        (r) => r.method === 'GET' && /\/o\?/.test(r.path) && r.path.includes('maxResults=10'),
      );
    expect(lists).toHaveLength(3);
  });
});

describe('errors', () => {
  it('reports a missing bucket as BackendUnavailableError naming the bucket', async () => {
    const store = GcsStore.fromUrl(`gs://${freshName('no-such-bucket')}/x`, {
      gcs: { api_endpoint: gcs.emulator.url, project_id: 'tasklog-test', max_attempts: 1 },
    });
    const ping = await store.ping().catch((e: unknown) => e);
    expect(ping).toBeInstanceOf(BackendUnavailableError);
    expect((ping as Error).message).toContain(store.bucket);
    const read = await readAll(store, KEY).catch((e: unknown) => e);
    expect(read).toBeInstanceOf(BackendUnavailableError);
    expect((read as Error).message).toContain(store.bucket);
  });

  it('reports a missing attempt as NotFoundError naming the object', async () => {
    const store = makeStore();
    await store.ping();
    const err = await readAll(store, KEY).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain(`gs://${gcs.bucket}/${FINAL}`);
    expect(await store.stat(KEY)).toBeUndefined();
  });

  it('lets the SDK retry a request that failed once with 503', async () => {
    const store = makeStore();
    const content = Buffer.from('retried\n');
    await writeLog(store, KEY, content);
    const fault = gcs.emulator.faults.add({
      match: { method: 'GET' },
      action: { status: 503 },
      times: 1,
    });
    expect(await store.stat(KEY)).toMatchObject({ size: content.length, complete: true });
    expect(fault.hits).toBe(1);
    expect(gcs.emulator.requestLog.some((r) => r.status === 503)).toBe(true);
  });
});
