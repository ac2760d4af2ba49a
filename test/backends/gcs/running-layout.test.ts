import { Storage } from '@google-cloud/storage';
import { PathTemplate } from '@tasklog/core';
import { afterAll, beforeAll } from 'vitest';
import { GcsStore } from '../../../packages/core/src/stores/gcs/store.js';
import { type GcsEmulator, startGcsEmulator } from '../../emulators/gcs/index.js';
import { describeRunningLayout } from '../../support/running-layout.js';
import { freshName } from '../../support/servers.js';

let emulator: GcsEmulator;
let sdk: Storage;

beforeAll(async () => {
  emulator = await startGcsEmulator();
  sdk = new Storage({ apiEndpoint: emulator.url, projectId: 'tasklog-test' });
});

afterAll(async () => {
  await emulator?.close();
});

describeRunningLayout('GcsStore', async () => {
  const bucket = freshName('layout');
  emulator.createBucket(bucket);
  const template = new PathTemplate();
  return {
    store: GcsStore.fromUrl(
      `gs://${bucket}/airflow/logs`,
      { gcs: { api_endpoint: emulator.url, project_id: 'tasklog-test', max_attempts: 3 } },
      { maxRetryDelaySeconds: 1 },
    ),
    finalName: (key) => `airflow/logs/${template.render(key)}`,
    put: async (name, bytes) => {
      await sdk.bucket(bucket).file(name).save(bytes, { resumable: false });
    },
    names: async (prefix) => {
      const [files] = await sdk.bucket(bucket).getFiles({ prefix });
      return files.map((f) => f.name).sort();
    },
    legacyMarker: { name: 'running', bytes: Buffer.alloc(0) },
    cleanup: async () => {},
  };
});
