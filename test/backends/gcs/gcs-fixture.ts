import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { type GcsEmulator, startGcsEmulator } from '../../emulators/gcs/index.js';
import { freshName } from '../../support/servers.js';
import { makeTempDir, removeTempDir } from '../../support/temp-dir.js';

/**
 * What the GcsStore test files share: one emulator per file with the SDK pointed at it, a
 * temporary folder, and a new bucket per test. The bindings are set by the hooks
 * `useBucketPerTest()` registers. Test files import it as `gcs`.
 */
export const PREFIX = 'airflow/logs';

export let emulator: GcsEmulator;
export let sdk: Storage;
/** A temporary folder for the file's local files, removed after its last test. */
export let tmp: string;
/** The running test's bucket, named `<label>-…`, empty and without faults when it starts. */
export let bucket: string;

export function useBucketPerTest(label: string): void {
  beforeAll(async () => {
    emulator = await startGcsEmulator();
    sdk = new Storage({ apiEndpoint: emulator.url, projectId: 'tasklog-test' });
    tmp = await makeTempDir(`gcs-${label}`);
  });

  afterAll(async () => {
    await emulator?.close();
    await removeTempDir(tmp);
  });

  beforeEach(() => {
    bucket = freshName(label);
    emulator.createBucket(bucket);
    emulator.faults.clear();
  });
}

/** The object `name` in the test's bucket, through the SDK. */
export function file(name: string) {
  return sdk.bucket(bucket).file(name);
}

/** The names of the objects under `prefix` in the test's bucket, as the SDK lists them. */
export async function objectNames(prefix: string): Promise<string[]> {
  const [files] = await sdk.bucket(bucket).getFiles({ prefix });
  return files.map((f) => f.name);
}
