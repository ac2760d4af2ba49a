import { createHash } from 'node:crypto';
import { type Bucket, Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import { type GcsEmulator, startGcsEmulator } from './gcs-emulator.js';

/**
 * What the emulator's test files share: one emulator per file with the bucket BUCKET, the SDK
 * pointed at it, and helpers that speak to it on the wire. `emulator`, `storage` and `bucket` are
 * set once `startEmulatorForThisFile()` has run its beforeAll.
 */
export const BUCKET = 'emulator-test';
export const KiB = 1024;
export const MiB = 1024 * KiB;

export let emulator: GcsEmulator;
export let storage: Storage;
export let bucket: Bucket;

/** Starts the emulator before the file's first test and closes it after the last one. */
export function startEmulatorForThisFile(): void {
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
}

export const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
/** Deep equality on large Buffers is slow in vitest; compare digests instead. */
export const expectSameBytes = (actual: Buffer, expected: Buffer) => {
  expect(actual.length).toBe(expected.length);
  expect(sha256(actual)).toBe(sha256(expected));
};
export const md5Base64 = (data: Buffer) => createHash('md5').update(data).digest('base64');
export const objectUrl = (name: string, query = '') =>
  `${emulator.url}/storage/v1/b/${BUCKET}/o/${encodeURIComponent(name)}${query}`;

export async function uploadRaw(
  name: string,
  data: Buffer | string,
  query = '',
): Promise<Response> {
  return fetch(
    `${emulator.url}/upload/storage/v1/b/${BUCKET}/o?uploadType=media&name=${encodeURIComponent(name)}${query}`,
    { method: 'POST', body: data, headers: { 'Content-Type': 'application/octet-stream' } },
  );
}
