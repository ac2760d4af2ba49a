import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Storage } from '@google-cloud/storage';
import {
  AbortedError,
  type AttemptKey,
  attemptKey,
  ConflictError,
  PathTemplate,
  type UploadJournal,
} from '@tasklog/core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GcsStore, type GcsStoreOptions } from '../../packages/core/src/stores/gcs/store.js';
import { runningPrefix } from '../../packages/core/src/stores/shared/chunk-layout.js';
import { type GcsEmulator, startGcsEmulator } from '../emulators/gcs/index.js';
import { journalState, recoverShip, runShipChild, type ShipJob } from '../support/killable-ship.js';
import { prng } from '../support/logs.js';

const PREFIX = 'airflow/logs';
const KiB = 1024;
const MiB = 1024 * KiB;
const template = new PathTemplate();

let emulator: GcsEmulator;
let sdk: Storage;
let tmp: string;
let bucket: string;

beforeAll(async () => {
  emulator = await startGcsEmulator();
  sdk = new Storage({ apiEndpoint: emulator.url, projectId: 'tasklog-test' });
  tmp = await mkdtemp(path.join(tmpdir(), 'tasklog-gcs-crash-'));
});

afterAll(async () => {
  await emulator?.close();
  await rm(tmp, { recursive: true, force: true });
});

beforeEach(() => {
  bucket = `crash-${randomBytes(6).toString('hex')}`;
  emulator.createBucket(bucket);
  emulator.faults.clear();
});

function storeOptions(overrides: Partial<GcsStoreOptions> = {}): GcsStoreOptions {
  return {
    bucket,
    prefix: PREFIX,
    apiEndpoint: emulator.url,
    projectId: 'tasklog-test',
    maxAttempts: 3,
    maxRetryDelaySeconds: 1,
    uploadChunkSize: 256 * KiB,
    ...overrides,
  };
}

function key(overrides: Partial<AttemptKey> = {}): AttemptKey {
  return attemptKey({
    dagId: 'etl',
    runId: 'scheduled__2024-01-01T00:00:00+00:00',
    taskId: 'extract',
    tryNumber: 1,
    ...overrides,
  });
}

const finalName = (k: AttemptKey = key()) => `${PREFIX}/${template.render(k)}`;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Bytes that do not compress (seeded). */
function noise(size: number, seed: number): Buffer {
  const rand = prng(seed);
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(rand() * 256);
  return out;
}

function memoryJournal(): UploadJournal & { state: unknown } {
  const journal = {
    state: undefined as unknown,
    load: async () => journal.state,
    save: async (s: unknown) => {
      journal.state = JSON.parse(JSON.stringify(s));
    },
  };
  return journal;
}

async function objectNames(prefix: string): Promise<string[]> {
  const [files] = await sdk.bucket(bucket).getFiles({ prefix });
  return files.map((f) => f.name);
}

async function writeInChunks(store: GcsStore, k: AttemptKey, content: Buffer, pieceBytes: number) {
  const writer = await store.openWriter(k);
  for (let at = 0; at < content.length; at += pieceBytes) {
    await writer.append(content.subarray(at, at + pieceBytes));
    await writer.flush();
  }
  return writer;
}

async function fileOf(name: string, content: Buffer) {
  const file = path.join(tmp, name);
  await writeFile(file, content);
  return { path: file, size: content.length, sha256: sha256(content) };
}

/** The custom metadata of each state the final object has had, oldest first. */
const versionsOfFinal = (k?: AttemptKey) =>
  emulator.objectVersions(bucket, finalName(k)).map((v) => v.metadata ?? {});

describe('GcsStore writes tasklog-sha256 only after checking the stored object', () => {
  it('composes a finished log without it and patches it on, conditional on the metageneration it checked', async () => {
    const store = new GcsStore(storeOptions());
    const content = noise(300 * KiB, 1);
    const writer = await writeInChunks(store, key(), content, 64 * KiB);
    await writer.finish({ size: content.length, sha256: sha256(content) });

    const versions = versionsOfFinal();
    expect(versions[0]).not.toHaveProperty('tasklog-sha256');
    expect(versions.at(-1)).toEqual({
      'tasklog-size': String(content.length),
      'tasklog-sha256': sha256(content),
    });
    const patch = emulator.requestLog.findLast(
      (r) => r.method === 'PATCH' && r.path.includes(encodeURIComponent(finalName())),
    );
    expect(patch?.path).toContain('ifMetagenerationMatch=1');
  });

  it('uploads a file without it and patches it on once the object matched the file', async () => {
    const store = new GcsStore(storeOptions());
    const log = await fileOf('upload-sha.log', noise(700 * KiB, 2));
    await store.upload(key(), log);

    const versions = versionsOfFinal();
    expect(versions[0]).toEqual({ 'tasklog-size': String(log.size) });
    expect(versions.at(-1)).toMatchObject({ 'tasklog-sha256': log.sha256 });
    expect(await store.stat(key())).toMatchObject({ size: log.size, sha256: log.sha256 });
  });

  it('keeps the gzip encoding and the uncompressed size of a gzip log', async () => {
    const store = new GcsStore(storeOptions({ compression: 'gzip' }));
    const content = noise(400 * KiB, 3);
    const writer = await writeInChunks(store, key(), content, 100 * KiB);
    await writer.finish({ size: content.length, sha256: sha256(content) });

    expect(versionsOfFinal()[0]).toEqual({ 'tasklog-size': String(content.length) });
    const [meta] = await sdk.bucket(bucket).file(finalName()).getMetadata();
    expect(meta.contentEncoding).toBe('gzip');
    expect(meta.contentType).toBe('text/plain; charset=utf-8');
    expect(await store.stat(key())).toMatchObject({
      size: content.length,
      sha256: sha256(content),
    });
  });

  it('leaves no sha256 for a resumed ship to trust when the patch after the check fails', async () => {
    const store = new GcsStore(storeOptions({ maxAttempts: 1 }));
    const content = noise(200 * KiB, 4);
    const writer = await writeInChunks(store, key(), content, 50 * KiB);
    emulator.faults.add({ match: { method: 'PATCH' }, action: { status: 503 } });
    await expect(
      writer.finish({ size: content.length, sha256: sha256(content) }),
    ).rejects.toThrow();
    emulator.faults.clear();

    const stat = await store.stat(key());
    expect(stat).toMatchObject({ size: content.length, complete: true });
    expect(stat?.sha256).toBeUndefined();
  });

  it('refuses to patch an object that was replaced after the check', async () => {
    const store = new GcsStore(storeOptions());
    const content = noise(100 * KiB, 5);
    const writer = await writeInChunks(store, key(), content, 50 * KiB);
    const held = emulator.faults.add({
      match: { method: 'PATCH' },
      action: { delayMs: 500 },
      times: 1,
    });
    const finishing = writer.finish({ size: content.length, sha256: sha256(content) });
    while (held.hits === 0) await sleep(10);
    await sdk.bucket(bucket).file(finalName()).save('someone else\n', { resumable: false });

    await expect(finishing).rejects.toBeInstanceOf(ConflictError);
    expect(versionsOfFinal().at(-1)).not.toHaveProperty('tasklog-sha256');
  });
});

describe('GcsStore.sweep', () => {
  it('removes the chunks, the running marker and compose leftovers beside a complete log', async () => {
    const store = new GcsStore(storeOptions());
    const writer = await writeInChunks(store, key(), Buffer.from('one\ntwo\n'), 4);
    await sdk
      .bucket(bucket)
      .file(`${runningPrefix(finalName())}compose-0-0`)
      .save('partial compose');
    // A kill between composing the log and removing its chunks leaves this.
    await sdk.bucket(bucket).file(finalName()).save('one\ntwo\n', { resumable: false });
    await writer.abort();

    await store.sweep(key());
    expect(await objectNames(PREFIX)).toEqual([finalName()]);
  });

  it('cancels the upload session a journal names once the log is complete, and empties the journal', async () => {
    const store = new GcsStore(storeOptions());
    const log = await fileOf('sweep-session.log', noise(2 * MiB, 6));
    const journal = memoryJournal();
    const stop = new AbortController();
    await expect(
      store.upload(key(), log, {
        journal,
        signal: stop.signal,
        onProgress: (done) => {
          if (done > 0) stop.abort();
        },
      }),
    ).rejects.toBeInstanceOf(AbortedError);
    const { uri } = journal.state as { uri: string };
    const uploadId = new URL(uri).searchParams.get('upload_id');
    expect(emulator.activeSessions().map((s) => s.uploadId)).toContain(uploadId);
    await sdk.bucket(bucket).file(finalName()).save('finished elsewhere\n', { resumable: false });

    await store.sweep(key(), { journal });
    expect(emulator.activeSessions().map((s) => s.uploadId)).not.toContain(uploadId);
    expect(journal.state).toBeNull();
  });

  it('leaves a running attempt and its chunks alone', async () => {
    const store = new GcsStore(storeOptions());
    const writer = await writeInChunks(store, key(), Buffer.from('still running\n'), 5);
    await store.sweep(key());
    expect(await store.stat(key())).toMatchObject({ size: 14, complete: false });
    await writer.abort();
  });
});

describe('GcsStore.upload with replace', () => {
  it('replaces a complete log on condition that it is still the generation it replaces', async () => {
    const store = new GcsStore(storeOptions());
    await sdk.bucket(bucket).file(finalName()).save('first part\n', { resumable: false });
    const [old] = await sdk.bucket(bucket).file(finalName()).getMetadata();
    const grown = await fileOf('replace.log', Buffer.from('first part\nand what came later\n'));
    const logStart = emulator.requestLog.length;

    await store.upload(key(), grown, { replace: true });
    expect(await store.stat(key())).toMatchObject({ size: grown.size, sha256: grown.sha256 });
    const start = emulator.requestLog
      .slice(logStart)
      .find((r) => r.method === 'POST' && r.path.includes('uploadType=resumable'));
    expect(start?.path).toContain(`ifGenerationMatch=${old.generation}`);
  });
});

/**
 * A child process stores a log and is SIGKILLed at k/N of the time the call under test takes;
 * the next run (`recoverShip`: finish or upload again from the journal, then sweep) must leave
 * exactly one object with the log's bytes, nothing under its chunk prefix and an empty journal.
 * (A GCS resumable session whose URI never reached the journal cannot be found again; it holds
 * no object and expires within a week.)
 */
describe.each([
  ['finish', 'none', 5],
  ['finish', 'gzip', 3],
  ['upload', 'none', 5],
] as const)(
  'GcsStore, a process killed inside %s() (compression %s)',
  (mode, compression, kills) => {
    const content = noise(3 * MiB + 123, 7);
    let options: GcsStoreOptions;
    let calibration: number;

    const job = (tryNumber: number): ShipJob => ({
      store: { kind: 'gcs', options },
      key: key({ taskId: `${mode}_${compression}`, tryNumber }),
      mode,
      file: path.join(tmp, `killed-${mode}.log`),
      size: content.length,
      sha256: sha256(content),
      journal: path.join(tmp, `journal-${mode}-${compression}-${tryNumber}.json`),
      pieceBytes: 256 * KiB,
    });

    beforeAll(async () => {
      const shared = `killed-${randomBytes(4).toString('hex')}`;
      emulator.createBucket(shared);
      options = { ...storeOptions({ compression }), bucket: shared };
      await writeFile(job(1).file, content);
      const run = await runShipChild(job(1000));
      expect(run.done).toBe(true);
      calibration = run.ms;
    });

    for (let k = 1; k <= kills; k++) {
      it(`is resumed after a kill at ${k}/${kills} of the call to one verified object and nothing else`, async () => {
        const j = job(k);
        await runShipChild(j, (calibration * k) / kills);
        const store = new GcsStore(options);
        await recoverShip(store, j);

        const final = finalName(j.key);
        const [files] = await sdk.bucket(options.bucket).getFiles({ prefix: final });
        expect(files.map((f) => f.name)).toEqual([final]);
        const hash = createHash('sha256');
        for await (const piece of store.read(j.key)) hash.update(piece.bytes);
        expect(hash.digest('hex')).toBe(j.sha256);
        const stat = await store.stat(j.key);
        expect(stat).toMatchObject({ size: j.size, complete: true });
        // A kill between writing the object and checking it leaves it without sha256.
        expect([undefined, j.sha256]).toContain(stat?.sha256);
        expect(await journalState(j)).toBeNull();
      });
    }
  },
);
