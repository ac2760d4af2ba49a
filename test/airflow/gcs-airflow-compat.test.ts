import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { Storage } from '@google-cloud/storage';
import type { AttemptKey, LogStore } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GcsStore } from '../../packages/core/src/stores/gcs/store.js';
import {
  chunkName,
  legacyRunningPrefix,
  runningPrefix,
} from '../../packages/core/src/stores/shared/chunk-layout.js';
import { type GcsEmulator, startGcsEmulator } from '../emulators/gcs/index.js';
import { type ClientResult, gcloudFor, gcloudPath } from '../support/outside-clients.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import * as airflow from './blob-airflow-compat.js';
import {
  compatKey,
  compatLogPieces,
  finishedCompatAttempt,
  runningCompatAttempt,
} from './compat-log.js';
import { airflowGcsRead } from './gcs-airflow-read.js';

/**
 * tasklog's GCS archive as Airflow's GCS task handler sees it, and Airflow's objects as tasklog
 * reads them. `remote_base_log_folder = gs://airflow-logs/airflow/logs`.
 */
let emulator: GcsEmulator;
let storage: Storage;
let store: LogStore;
let home: string;
let archive: airflow.Archive;

const uriOf = (k: AttemptKey) => `gs://${airflow.BUCKET}/${airflow.objectName(k)}`;
const airflowRead = (k: AttemptKey) =>
  airflowGcsRead(storage, airflow.BUCKET, airflow.REMOTE_BASE, airflow.template.render(k));
const put = (name: string, bytes: Buffer | string) =>
  storage
    .bucket(airflow.BUCKET)
    .file(name)
    .save(bytes, { resumable: false, contentType: 'text/plain' });

beforeAll(async () => {
  emulator = await startGcsEmulator();
  emulator.createBucket(airflow.BUCKET);
  storage = new Storage({ apiEndpoint: emulator.url, projectId: 'test' });
  store = GcsStore.fromUrl(`gs://${airflow.BUCKET}/${airflow.REMOTE_BASE}`, {
    gcs: { api_endpoint: emulator.url, project_id: 'test', max_attempts: 3 },
  });
  home = await makeTempDir('gcs-airflow');
  const cliEnv = {
    PATH: process.env.PATH,
    TASKLOG_HOME: home,
    TASKLOG__LOGGING__LEVEL: 'silent',
    // Node's own warnings (the GCS SDK's MaxListeners notice) are not tasklog's output.
    NODE_NO_WARNINGS: '1',
    TASKLOG__STORE__URL: `gs://${airflow.BUCKET}/${airflow.REMOTE_BASE}`,
    TASKLOG__GCS__API_ENDPOINT: emulator.url,
    TASKLOG__GCS__PROJECT_ID: 'test',
  };
  archive = { store, cliEnv, uriOf, airflowRead, put };
});

afterAll(async () => {
  await store?.close();
  await emulator?.close();
  await removeTempDir(home);
});

describe('tasklog → Airflow’s GCS reader (list_blobs(prefix=key), decode() of each, first failure ends it)', () => {
  airflow.itShowsWhatTasklogWrote(() => archive);

  it('was broken by the layout before, which kept chunks at <key>.chunks/ (the reader’s own check)', async () => {
    const k = compatKey('old_layout');
    const pieces = compatLogPieces(airflow.LOG);
    let offset = 0;
    for (const piece of pieces) {
      await put(`${legacyRunningPrefix(airflow.objectName(k))}${chunkName(offset)}`, piece);
      offset += piece.length;
    }
    const seen = await airflowRead(k);
    expect(seen.uris).toHaveLength(pieces.length);
    expect(seen.failure).toMatch(/^Unable to read remote log 'utf-8' codec can't decode/);
    // tasklog still reads what an older version left (see test/backends/gcs/running-layout.test.ts).
    expect((await readAll(store, k)).equals(airflow.LOG)).toBe(true);
  });

  it('shows nothing but, in 2.x, its decode error for a finished log that is not UTF-8 (as for any such object)', async () => {
    const k = compatKey('not_utf8');
    await finishedCompatAttempt(store, k, airflow.LOG);
    const at = airflow.LOG.indexOf(0xff);
    expect(await airflowRead(k)).toEqual({
      uris: [uriOf(k)],
      logs: [],
      failure: `Unable to read remote log 'utf-8' codec can't decode byte 0xff in position ${at}: invalid start byte`,
    });
    expect((await readAll(store, k)).equals(airflow.LOG)).toBe(true);
  });
});

describe('Airflow’s GCS writer → tasklog', () => {
  // `gcs_write`: `old_log = blob.download_as_bytes().decode()`, then
  // `f"{old_log}\n{log}" if old_log else log` (2.x: "\n".join), `upload_from_string(log,
  // content_type="text/plain")`; `log` is the local file's `read_text()`.
  const first = Buffer.from(
    '[2024-05-01T10:00:05.123+0000] {taskinstance.py:1157} INFO - Dependencies all met\n' +
      'héllo wörld 日本語 🙂\n\nlast line, no newline',
  );
  const appended = Buffer.concat([
    first,
    Buffer.from(
      '\n[2024-05-01T10:10:00.000+0000] {taskinstance.py:2612} INFO - Resuming after deferral\n',
    ),
  ]);
  airflow.itReadsWhatItUploaded(() => archive, { first, appended });
});

describe.skipIf(!gcloudPath)(
  'gcloud storage over tasklog’s archive (skipped: gcloud is not installed)',
  () => {
    let gcloud: (args: string[]) => Promise<ClientResult>;
    let close: () => Promise<void>;
    beforeAll(async () => {
      ({ gcloud, close } = await gcloudFor(emulator.url));
    });
    afterAll(async () => {
      await close?.();
    });
    const lines = (r: ClientResult) =>
      r.stdout
        .toString()
        .split('\n')
        .filter((l) => l !== '');

    it('lists nothing under a running attempt’s key; its chunks, in their own folder, hold its bytes', async () => {
      const k = compatKey('gcloud_running');
      const writer = await runningCompatAttempt(store, k, airflow.LOG);
      const atKey = await gcloud(['storage', 'ls', `${uriOf(k)}**`]);
      expect(atKey.stdout.toString()).toBe('');
      expect(atKey.code).not.toBe(0); // "One or more URLs matched no objects."
      const running = `gs://${airflow.BUCKET}/${runningPrefix(airflow.objectName(k))}`;
      const all = await gcloud(['storage', 'ls', `${running}**`]);
      expect(all.code).toBe(0);
      const chunks = lines(all).filter((u) => !u.endsWith('/running'));
      expect(chunks).toHaveLength(compatLogPieces(airflow.LOG).length);
      for (const uri of lines(all)) expect(uri.startsWith(uriOf(k))).toBe(false);
      const dir = await mkdtemp(path.join(home, 'gcloud-'));
      const copied = await gcloud(['storage', 'cp', `${running}*`, `${dir}/`]);
      expect(copied.code).toBe(0);
      await airflow.expectCopiedChunks(dir, [...chunks].sort());
      await writer.abort();
    });

    it('lists exactly the object of a finished attempt, whose bytes are the log', async () => {
      const k = compatKey('gcloud_finished');
      await finishedCompatAttempt(store, k, airflow.LOG);
      const atKey = await gcloud(['storage', 'ls', `${uriOf(k)}**`]);
      expect(atKey.code).toBe(0);
      expect(lines(atKey)).toEqual([uriOf(k)]);
      const got = await gcloud(['storage', 'cat', uriOf(k)]);
      expect(got.code).toBe(0);
      expect(got.stdout.equals(airflow.LOG)).toBe(true);
    });
  },
);
