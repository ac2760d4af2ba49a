import { createHash } from 'node:crypto';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import type { AttemptKey, UploadJournal } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  S3Store,
  type S3StoreOptions,
  type SweepSkip,
} from '../../../packages/core/src/stores/s3/store.js';
import { runningPrefix } from '../../../packages/core/src/stores/shared/chunk-layout.js';
import { sha256 } from '../../support/hash.js';
import { itRecoversFromKills } from '../../support/killable-ship.js';
import { noise } from '../../support/logs.js';
import { type RecordedRequest, type S3rverFixture, startS3rver } from '../../support/s3rver.js';
import { logFile, memoryJournal, splitEvery, writeRunning } from '../../support/stores.js';
import { makeTempDir, removeTempDir } from '../../support/temp-dir.js';
import { key, MiB, rawClient, storeOptions as storeOn } from './s3-fixture.js';

// The logs are noise(): it does not compress, so a gzip log spans several parts too.

/** s3rver with ListMultipartUploads, ListParts and AbortMultipartUpload (see startS3rver). */
let server: S3rverFixture;
/** s3rver as it is: none of those three. */
let plain: S3rverFixture;
let tmp: string;

beforeAll(async () => {
  server = await startS3rver('crash', { multipartApis: true });
  plain = await startS3rver('plain');
  tmp = await makeTempDir('s3-crash');
});

afterAll(async () => {
  await server?.close();
  await plain?.close();
  await removeTempDir(tmp);
});

/** A store's options on `on` with S3's smallest parts, 5 MiB: a 12 MiB log spans three. */
function storeOptions(on: S3rverFixture, options: Partial<S3StoreOptions> = {}): S3StoreOptions {
  return storeOn(on, { partSize: 5 * MiB, ...options });
}

function finalKey(store: S3Store, k: AttemptKey = key()): string {
  return `${store.prefix}/${store.options.pathTemplate.render(k)}`;
}

/**
 * A journal whose process dies right after its `saves`-th save: that save lands, then it throws
 * (and so does every later call), as if the process had been killed there.
 */
function dyingJournal(saves: number): UploadJournal & { state: unknown } {
  const journal = memoryJournal();
  let count = 0;
  const save = journal.save;
  journal.save = async (state: unknown) => {
    if (count >= saves) throw new Error('the process died');
    await save(state);
    count++;
    if (count === saves) throw new Error('the process died');
  };
  return journal;
}

/** What the next run's journal loads: the state the dead process's journal saved last. */
function journalLeftBy(dead: { state: unknown }): UploadJournal & { state: unknown } {
  const journal = memoryJournal();
  journal.state = dead.state;
  return journal;
}

/**
 * A 12 MiB log (noise of `seed`) whose writer died inside finish() right after its journal's
 * second save (the upload id, then part 1): the store, the log and the dead process's journal.
 */
async function writerDiedInFinish(on: S3rverFixture, seed: number) {
  const store = new S3Store(storeOptions(on));
  const content = noise(12 * MiB, seed);
  const dying = dyingJournal(2);
  const writer = await writeRunning(store, key(), splitEvery(content, MiB), { journal: dying });
  await expect(writer.finish({ size: content.length, sha256: sha256(content) })).rejects.toThrow(
    'the process died',
  );
  return { store, content, dying };
}

/**
 * Puts the finished log at its key directly: the state a kill leaves between completing the
 * object and removing the chunks, or a log another writer (Airflow's handler) stored meanwhile.
 */
async function completeBehindItsBack(on: S3rverFixture, objectKey: string, content: Buffer) {
  const client = rawClient(on);
  try {
    await client.send(new PutObjectCommand({ Bucket: on.bucket, Key: objectKey, Body: content }));
  } finally {
    client.destroy();
  }
}

async function objectOf(on: S3rverFixture, objectKey: string) {
  const client = rawClient(on);
  try {
    const res = await client.send(new GetObjectCommand({ Bucket: on.bucket, Key: objectKey }));
    return { res, body: Buffer.from(await res.Body!.transformToByteArray()) };
  } finally {
    client.destroy();
  }
}

/** Requests s3rver received for exactly this object key, in order. */
function requestsFor(on: S3rverFixture, objectKey: string): RecordedRequest[] {
  return on.requests.filter((r) => r.path === `/${on.bucket}/${objectKey}`);
}

const has = (r: RecordedRequest, param: string) => new URLSearchParams(r.query).has(param);

/** The one request that wrote `tasklog-sha256`, and where the object was created and checked. */
function sha256Timeline(on: S3rverFixture, objectKey: string) {
  const requests = requestsFor(on, objectKey);
  const carrying = requests.filter((r) => r.headers['x-amz-meta-tasklog-sha256'] !== undefined);
  const created = requests.findIndex((r) => r.method === 'POST' && has(r, 'uploads'));
  const completed = requests.findIndex((r) => r.method === 'POST' && has(r, 'uploadId'));
  const checked = requests.findIndex((r, i) => i > completed && r.method === 'HEAD');
  return { requests, carrying, created, completed, checked };
}

describe('S3Store writes tasklog-sha256 only after checking the stored object', () => {
  it('creates a log assembled from chunks without it and adds it by a conditional self-copy after the check', async () => {
    const store = new S3Store(storeOptions(server));
    const content = noise(12 * MiB + 5);
    const writer = await writeRunning(store, key(), splitEvery(content, MiB));
    await writer.finish({ size: content.length, sha256: sha256(content) });

    const t = sha256Timeline(server, finalKey(store));
    expect(t.created).toBeGreaterThanOrEqual(0);
    expect(t.completed).toBeGreaterThan(t.created);
    expect(t.checked).toBeGreaterThan(t.completed);
    expect(t.carrying).toHaveLength(1);
    const [stamp] = t.carrying;
    expect(t.requests.indexOf(stamp!)).toBeGreaterThan(t.checked);
    expect(stamp!.method).toBe('PUT');
    expect(stamp!.headers['x-amz-metadata-directive']).toBe('REPLACE');
    expect(stamp!.headers['x-amz-copy-source-if-match']).toMatch(/^"[0-9a-f]{32}"$/);
    expect(stamp!.headers['x-amz-meta-tasklog-sha256']).toBe(sha256(content));
    expect(await store.stat(key())).toMatchObject({ complete: true, sha256: sha256(content) });
  });

  it('stores a file with upload() without it and adds it only after the check', async () => {
    const store = new S3Store(storeOptions(server));
    const content = noise(11 * MiB, 2);
    await store.upload(key(), await logFile(tmp, 'sha-after-check.log', content));

    const t = sha256Timeline(server, finalKey(store));
    expect(t.created).toBeGreaterThanOrEqual(0);
    expect(t.checked).toBeGreaterThan(t.completed);
    expect(t.carrying).toHaveLength(1);
    expect(t.requests.indexOf(t.carrying[0]!)).toBeGreaterThan(t.checked);
    expect(await store.stat(key())).toMatchObject({
      size: content.length,
      sha256: sha256(content),
    });
  });

  it('keeps the content type, the gzip encoding and the uncompressed size when it adds it', async () => {
    const store = new S3Store(storeOptions(server, { compression: 'gzip' }));
    const content = noise(11 * MiB, 3);
    await store.upload(key(), await logFile(tmp, 'gzip-stamp.log', content));

    const { res, body } = await objectOf(server, finalKey(store));
    expect(res.ContentType).toBe('text/plain; charset=utf-8');
    expect(res.ContentEncoding).toBe('gzip');
    expect(res.Metadata).toEqual({
      'tasklog-size': String(content.length),
      'tasklog-sha256': sha256(content),
    });
    expect(gunzipSync(body).equals(content)).toBe(true);
    const [stamp] = sha256Timeline(server, finalKey(store)).carrying;
    expect(stamp?.headers['x-amz-copy-source']).toBeDefined();
    expect(stamp?.headers['content-encoding']).toBe('gzip');
  });

  it('stores a log of at most one part with one PutObject that carries Content-MD5 and tasklog-sha256', async () => {
    const store = new S3Store(storeOptions(server));
    const content = Buffer.from('a short log\n');
    const writer = await writeRunning(store, key(), splitEvery(content, 4));
    await writer.finish({ size: content.length, sha256: sha256(content) });

    const writes = requestsFor(server, finalKey(store)).filter((r) => r.method !== 'HEAD');
    expect(writes).toHaveLength(1);
    expect(writes[0]!.method).toBe('PUT');
    expect(writes[0]!.headers['content-md5']).toBe(
      createHash('md5').update(content).digest('base64'),
    );
    expect(writes[0]!.headers['x-amz-meta-tasklog-sha256']).toBe(sha256(content));
  });
});

describe('S3Store journals the multipart upload finish() assembles', () => {
  it('resumes the upload of a writer that died in finish(), sending only the missing parts', async () => {
    const { store, content, dying } = await writerDiedInFinish(plain, 4);
    const expected = { size: content.length, sha256: sha256(content) };
    const { uploadId } = dying.state as { uploadId: string };
    expect(await plain.openUploads()).toContainEqual({ uploadId, key: finalKey(store) });

    const journal = journalLeftBy(dying);
    const before = plain.requests.length;
    const resumed = await store.openWriter(key(), { journal });
    await resumed.finish(expected);

    const sent = plain.requests.slice(before).filter((r) => r.path.endsWith(finalKey(store)));
    expect(sent.filter((r) => r.method === 'POST' && has(r, 'uploads'))).toEqual([]);
    const parts = sent.filter((r) => r.method === 'PUT' && has(r, 'partNumber'));
    expect(parts.map((r) => new URLSearchParams(r.query).get('partNumber'))).toEqual(['2', '3']);
    expect(parts.every((r) => new URLSearchParams(r.query).get('uploadId') === uploadId)).toBe(
      true,
    );
    expect(await plain.openUploads()).toEqual([]);
    expect(journal.state).toBeNull();
    expect(sha256((await objectOf(plain, finalKey(store))).body)).toBe(expected.sha256);
    expect(await plain.listKeys(store.prefix)).toEqual([finalKey(store)]);
  });

  it('resumes a gzip upload() by compressing again and skipping the parts S3 holds', async () => {
    const store = new S3Store(storeOptions(plain, { compression: 'gzip' }));
    const content = noise(12 * MiB, 5);
    const log = await logFile(tmp, 'gzip-resume.log', content);
    const dying = dyingJournal(2);
    await expect(store.upload(key(), log, { journal: dying })).rejects.toThrow('the process died');

    const journal = journalLeftBy(dying);
    const before = plain.requests.length;
    await store.upload(key(), log, { journal });
    const parts = plain.requests
      .slice(before)
      .filter(
        (r) => r.path.endsWith(finalKey(store)) && r.method === 'PUT' && has(r, 'partNumber'),
      );
    expect(parts.map((r) => new URLSearchParams(r.query).get('partNumber'))).toEqual(['2', '3']);
    expect(await plain.openUploads()).toEqual([]);
    expect(await store.stat(key())).toMatchObject({ size: content.length, sha256: log.sha256 });
  });
});

describe('S3Store.sweep', () => {
  it('removes the chunks left beside a complete log', async () => {
    const store = new S3Store(storeOptions(server));
    const content = Buffer.from('line one\nline two\n');
    const writer = await writeRunning(store, key(), splitEvery(content, 9));
    await completeBehindItsBack(server, finalKey(store), content);
    await writer.abort();

    await store.sweep(key());
    expect(await server.listKeys(store.prefix)).toEqual([finalKey(store)]);
  });

  it('removes the empty offset-0 marker of an attempt opened but never flushed', async () => {
    const store = new S3Store(storeOptions(server));
    await (await store.openWriter(key())).abort();
    expect(await server.listKeys(runningPrefix(finalKey(store)))).toHaveLength(1);
    await completeBehindItsBack(server, finalKey(store), Buffer.from('done\n'));

    await store.sweep(key());
    expect(await server.listKeys(store.prefix)).toEqual([finalKey(store)]);
  });

  it('aborts the upload a journal names once the log is complete, and empties the journal', async () => {
    const { store, content, dying } = await writerDiedInFinish(server, 6);
    const { uploadId } = dying.state as { uploadId: string };
    await completeBehindItsBack(server, finalKey(store), content);

    const journal = journalLeftBy(dying);
    await store.sweep(key(), { journal });
    expect((await server.openUploads()).map((u) => u.uploadId)).not.toContain(uploadId);
    expect(journal.state).toBeNull();
    expect(await server.listKeys(store.prefix)).toEqual([finalKey(store)]);
  });

  it('aborts every upload of exactly this key that no journal names, and no other key’s', async () => {
    const store = new S3Store(storeOptions(server));
    await completeBehindItsBack(server, finalKey(store), Buffer.from('done\n'));
    const client = rawClient(server);
    for (const k of [finalKey(store), finalKey(store), `${finalKey(store)}.other`]) {
      await client.send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: k }));
    }
    client.destroy();

    await store.sweep(key());
    const left = (await server.openUploads()).filter((u) => u.key.startsWith(finalKey(store)));
    expect(left.map((u) => u.key)).toEqual([`${finalKey(store)}.other`]);
  });

  it('leaves a running attempt, its chunks and its journaled upload alone', async () => {
    const { store, content, dying } = await writerDiedInFinish(server, 7);
    const journal = journalLeftBy(dying);

    await store.sweep(key(), { journal });
    expect(journal.state).toEqual(dying.state);
    expect((await server.openUploads()).map((u) => u.uploadId)).toContain(
      (dying.state as { uploadId: string }).uploadId,
    );
    expect(await store.stat(key())).toMatchObject({ size: content.length, complete: false });
  });

  it('reports what s3rver cannot do as skipped, and still removes the chunks', async () => {
    const { store, content, dying } = await writerDiedInFinish(plain, 8);
    await completeBehindItsBack(plain, finalKey(store), content);

    const journal = journalLeftBy(dying);
    const skipped: SweepSkip[] = [];
    await store.sweep(key(), { journal, onSkipped: (s) => skipped.push(s) });
    expect(skipped.map((s) => s.operation)).toEqual([
      'AbortMultipartUpload',
      'ListMultipartUploads',
    ]);
    expect(skipped[0]).toMatchObject({
      uploadId: (dying.state as { uploadId: string }).uploadId,
      target: `s3://${plain.bucket}/${finalKey(store)}`,
    });
    expect(journal.state).toBeNull();
    expect(await plain.listKeys(store.prefix)).toEqual([finalKey(store)]);
  });
});

describe('S3Store.upload with replace', () => {
  it('replaces a complete log with the new one, verified and with its own sha256', async () => {
    const store = new S3Store(storeOptions(server));
    const old = Buffer.from('deferred task, first part\n');
    const grown = Buffer.concat([old, noise(6 * MiB, 9)]);
    await writeRunning(store, key(), splitEvery(old, old.length)).then((w) =>
      w.finish({ size: old.length, sha256: sha256(old) }),
    );
    await store.upload(key(), await logFile(tmp, 'replace.log', grown), { replace: true });
    expect(await store.stat(key())).toMatchObject({ size: grown.length, sha256: sha256(grown) });
    expect(sha256((await objectOf(server, finalKey(store))).body)).toBe(sha256(grown));
  });
});

/**
 * A child process stores a 12 MiB log and is SIGKILLed at k/N of the time the call under test
 * takes; the next run (`recoverShip`: finish or upload again from the journal, then sweep) must
 * leave exactly one object with the log's bytes, no chunk, no open multipart upload and an empty
 * journal. The server answers ListMultipartUploads and AbortMultipartUpload, so the sweep also
 * finds an upload created just before the kill whose id never reached the journal.
 */
describe.each([
  ['finish', 8],
  ['upload', 6],
] as const)('S3Store, a process killed inside %s()', (mode, kills) => {
  let options: S3StoreOptions;
  itRecoversFromKills({
    kills,
    content: noise(12 * MiB + 321, 10),
    job: (tryNumber) => ({
      store: { kind: 's3', options },
      key: key({ taskId: mode, tryNumber }),
      mode,
      file: path.join(tmp, `killed-${mode}.log`),
      journal: path.join(tmp, `journal-${mode}-${tryNumber}.json`),
      pieceBytes: MiB,
    }),
    before: () => {
      options = storeOptions(server);
    },
    open: () => new S3Store(options),
    check: async (store, j) => {
      const final = finalKey(store as S3Store, j.key);
      expect(await server.listKeys(final)).toEqual([final]);
      expect(sha256((await objectOf(server, final)).body)).toBe(j.sha256);
      expect((await server.openUploads()).filter((u) => u.key === final)).toEqual([]);
    },
  });
});
