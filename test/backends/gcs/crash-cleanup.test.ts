import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortedError, type AttemptKey, ConflictError, PathTemplate } from '@tasklog/core';
import { describe, expect, it } from 'vitest';
import { GcsStore, type GcsStoreOptions } from '../../../packages/core/src/stores/gcs/store.js';
import { runningPrefix } from '../../../packages/core/src/stores/shared/chunk-layout.js';
import { attemptKeys } from '../../support/attempts.js';
import { sha256 } from '../../support/hash.js';
import { itRecoversFromKills } from '../../support/killable-ship.js';
import { noise } from '../../support/logs.js';
import { freshName } from '../../support/servers.js';
import { logFile, memoryJournal, splitEvery, writeRunning } from '../../support/stores.js';
import * as gcs from './gcs-fixture.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const template = new PathTemplate();

gcs.useBucketPerTest('crash');

function storeOptions(overrides: Partial<GcsStoreOptions> = {}): GcsStoreOptions {
  return {
    bucket: gcs.bucket,
    prefix: gcs.PREFIX,
    apiEndpoint: gcs.emulator.url,
    projectId: 'tasklog-test',
    maxAttempts: 3,
    maxRetryDelaySeconds: 1,
    uploadChunkSize: 256 * KiB,
    ...overrides,
  };
}

const key = attemptKeys({
  dagId: 'etl',
  runId: 'scheduled__2024-01-01T00:00:00+00:00',
  taskId: 'extract',
});

const finalName = (k: AttemptKey = key()) => `${gcs.PREFIX}/${template.render(k)}`;

/** The custom metadata of each state the final object has had, oldest first. */
const versionsOfFinal = (k?: AttemptKey) =>
  gcs.emulator.objectVersions(gcs.bucket, finalName(k)).map((v) => v.metadata ?? {});

describe('GcsStore writes tasklog-sha256 only after checking the stored object', () => {
  it('composes a finished log without it and patches it on, conditional on the metageneration it checked', async () => {
    const store = new GcsStore(storeOptions());
    const content = noise(300 * KiB, 1);
    const writer = await writeRunning(store, key(), splitEvery(content, 64 * KiB));
    await writer.finish({ size: content.length, sha256: sha256(content) });

    const versions = versionsOfFinal();
    expect(versions[0]).not.toHaveProperty('tasklog-sha256');
    expect(versions.at(-1)).toEqual({
      'tasklog-size': String(content.length),
      'tasklog-sha256': sha256(content),
    });
    const patch = gcs.emulator.requestLog.findLast(
      (r) => r.method === 'PATCH' && r.path.includes(encodeURIComponent(finalName())),
    );
    expect(patch?.path).toContain('ifMetagenerationMatch=1');
  });

  it('uploads a file without it and patches it on once the object matched the file', async () => {
    const store = new GcsStore(storeOptions());
    const log = await logFile(gcs.tmp, 'upload-sha.log', noise(700 * KiB, 2));
    await store.upload(key(), log);

    const versions = versionsOfFinal();
    expect(versions[0]).toEqual({ 'tasklog-size': String(log.size) });
    expect(versions.at(-1)).toMatchObject({ 'tasklog-sha256': log.sha256 });
    expect(await store.stat(key())).toMatchObject({ size: log.size, sha256: log.sha256 });
  });

  it('keeps the gzip encoding and the uncompressed size of a gzip log', async () => {
    const store = new GcsStore(storeOptions({ compression: 'gzip' }));
    const content = noise(400 * KiB, 3);
    const writer = await writeRunning(store, key(), splitEvery(content, 100 * KiB));
    await writer.finish({ size: content.length, sha256: sha256(content) });

    expect(versionsOfFinal()[0]).toEqual({ 'tasklog-size': String(content.length) });
    const [meta] = await gcs.file(finalName()).getMetadata();
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
    const writer = await writeRunning(store, key(), splitEvery(content, 50 * KiB));
    gcs.emulator.faults.add({ match: { method: 'PATCH' }, action: { status: 503 } });
    await expect(
      writer.finish({ size: content.length, sha256: sha256(content) }),
    ).rejects.toThrow();
    gcs.emulator.faults.clear();

    const stat = await store.stat(key());
    expect(stat).toMatchObject({ size: content.length, complete: true });
    expect(stat?.sha256).toBeUndefined();
  });

  it('refuses to patch an object that was replaced after the check', async () => {
    const store = new GcsStore(storeOptions());
    const content = noise(100 * KiB, 5);
    const writer = await writeRunning(store, key(), splitEvery(content, 50 * KiB));
    const held = gcs.emulator.faults.add({
      match: { method: 'PATCH' },
      action: { delayMs: 500 },
      times: 1,
    });
    const finishing = writer.finish({ size: content.length, sha256: sha256(content) });
    while (held.hits === 0) await sleep(10);
    await gcs.file(finalName()).save('someone else\n', { resumable: false });

    await expect(finishing).rejects.toBeInstanceOf(ConflictError);
    expect(versionsOfFinal().at(-1)).not.toHaveProperty('tasklog-sha256');
  });
});

describe('GcsStore.sweep', () => {
  it('removes the chunks, the running marker and compose leftovers beside a complete log', async () => {
    const store = new GcsStore(storeOptions());
    const writer = await writeRunning(store, key(), splitEvery(Buffer.from('one\ntwo\n'), 4));
    await gcs.file(`${runningPrefix(finalName())}compose-0-0`).save('partial compose');
    // A kill between composing the log and removing its chunks leaves this.
    await gcs.file(finalName()).save('one\ntwo\n', { resumable: false });
    await writer.abort();

    await store.sweep(key());
    expect(await gcs.objectNames(gcs.PREFIX)).toEqual([finalName()]);
  });

  it('cancels the upload session a journal names once the log is complete, and empties the journal', async () => {
    const store = new GcsStore(storeOptions());
    const log = await logFile(gcs.tmp, 'sweep-session.log', noise(2 * MiB, 6));
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
    expect(gcs.emulator.activeSessions().map((s) => s.uploadId)).toContain(uploadId);
    await gcs.file(finalName()).save('finished elsewhere\n', { resumable: false });

    await store.sweep(key(), { journal });
    expect(gcs.emulator.activeSessions().map((s) => s.uploadId)).not.toContain(uploadId);
    expect(journal.state).toBeNull();
  });

  it('leaves a running attempt and its chunks alone', async () => {
    const store = new GcsStore(storeOptions());
    const writer = await writeRunning(store, key(), splitEvery(Buffer.from('still running\n'), 5));
    await store.sweep(key());
    expect(await store.stat(key())).toMatchObject({ size: 14, complete: false });
    await writer.abort();
  });
});

describe('GcsStore.upload with replace', () => {
  it('replaces a complete log on condition that it is still the generation it replaces', async () => {
    const store = new GcsStore(storeOptions());
    await gcs.file(finalName()).save('first part\n', { resumable: false });
    const [old] = await gcs.file(finalName()).getMetadata();
    const grown = await logFile(
      gcs.tmp,
      'replace.log',
      Buffer.from('first part\nand what came later\n'),
    );
    const logStart = gcs.emulator.requestLog.length;

    await store.upload(key(), grown, { replace: true });
    expect(await store.stat(key())).toMatchObject({ size: grown.size, sha256: grown.sha256 });
    const start = gcs.emulator.requestLog
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
    let options: GcsStoreOptions;
    itRecoversFromKills({
      kills,
      content: noise(3 * MiB + 123, 7),
      job: (tryNumber) => ({
        store: { kind: 'gcs', options },
        key: key({ taskId: `${mode}_${compression}`, tryNumber }),
        mode,
        file: path.join(gcs.tmp, `killed-${mode}.log`),
        journal: path.join(gcs.tmp, `journal-${mode}-${compression}-${tryNumber}.json`),
        pieceBytes: 256 * KiB,
      }),
      before: () => {
        const shared = freshName('killed');
        gcs.emulator.createBucket(shared);
        options = { ...storeOptions({ compression }), bucket: shared };
      },
      open: () => new GcsStore(options),
      check: async (_store, j) => {
        const final = finalName(j.key);
        const [files] = await gcs.sdk.bucket(options.bucket).getFiles({ prefix: final });
        expect(files.map((f) => f.name)).toEqual([final]);
      },
    });
  },
);
