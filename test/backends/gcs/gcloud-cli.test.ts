import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GcsEmulator, startGcsEmulator } from '../../emulators/gcs/index.js';
import { type ClientResult, gcloudFor, gcloudPath } from '../../support/outside-clients.js';
import { makeTempDir, removeTempDir } from '../../support/temp-dir.js';

/**
 * Google's own CLI against the emulator: what it sends (a multipart boundary in single quotes,
 * LF line ends, resumable uploads started at `/resumable/upload/storage/v1/…`) must work as it
 * does against GCS.
 */
describe.skipIf(!gcloudPath)(
  'gcloud storage against the GCS emulator (skipped: gcloud is not installed)',
  () => {
    const BUCKET = 'gcloud-cli';
    let emulator: GcsEmulator;
    let sdk: Storage;
    let gcloud: (args: string[]) => Promise<ClientResult>;
    let closeGcloud: () => Promise<void>;
    let dir: string;
    const small = Buffer.from('a small log é€𝄞\r\nsecond line\n');
    const big = Buffer.concat([randomBytes(9 * 1024 * 1024), Buffer.from('\nend')]);

    const ok = (r: ClientResult) => {
      expect(r.stderr).not.toMatch(/ERROR/);
      expect(r.code).toBe(0);
      return r;
    };

    beforeAll(async () => {
      emulator = await startGcsEmulator();
      emulator.createBucket(BUCKET);
      sdk = new Storage({ apiEndpoint: emulator.url, projectId: 'test' });
      ({ gcloud, close: closeGcloud } = await gcloudFor(emulator.url));
      dir = await makeTempDir('gcloud-cli');
      await writeFile(path.join(dir, 'small.log'), small);
      await writeFile(path.join(dir, 'big.bin'), big);
    });

    afterAll(async () => {
      await closeGcloud?.();
      await emulator?.close();
      await removeTempDir(dir);
    });

    it('uploads a small file with `cp` as one multipart request, byte for byte', async () => {
      const before = emulator.requestLog.length;
      ok(
        await gcloud(['storage', 'cp', path.join(dir, 'small.log'), `gs://${BUCKET}/up/small.log`]),
      );
      const posts = emulator.requestLog.slice(before).filter((r) => r.method === 'POST');
      expect(posts.map((r) => [r.path.split('?')[0], r.status])).toEqual([
        [`/upload/storage/v1/b/${BUCKET}/o`, 200],
      ]);
      expect((await sdk.bucket(BUCKET).file('up/small.log').download())[0].equals(small)).toBe(
        true,
      );
    });

    it('uploads a file over 8 MiB with `cp` as a resumable upload, byte for byte', async () => {
      const before = emulator.requestLog.length;
      ok(await gcloud(['storage', 'cp', path.join(dir, 'big.bin'), `gs://${BUCKET}/up/big.bin`]));
      const started = emulator.requestLog
        .slice(before)
        .filter((r) => r.method === 'POST' && r.path.includes('uploadType=resumable'));
      expect(started.map((r) => [r.path.split('?')[0], r.status])).toEqual([
        [`/resumable/upload/storage/v1/b/${BUCKET}/o`, 200],
      ]);
      expect((await sdk.bucket(BUCKET).file('up/big.bin').download())[0].equals(big)).toBe(true);
    });

    it('lists the bucket and below a prefix with `ls`', async () => {
      await sdk.bucket(BUCKET).file('ls/a/one.log').save('1\n', { resumable: false });
      await sdk.bucket(BUCKET).file('ls/two.log').save('2\n', { resumable: false });
      const top = ok(await gcloud(['storage', 'ls', `gs://${BUCKET}`]));
      expect(top.stdout.toString().split('\n')).toContain(`gs://${BUCKET}/ls/`);
      const all = ok(await gcloud(['storage', 'ls', '--recursive', `gs://${BUCKET}/ls/**`]));
      expect(all.stdout.toString().trim().split('\n').sort()).toEqual([
        `gs://${BUCKET}/ls/a/one.log`,
        `gs://${BUCKET}/ls/two.log`,
      ]);
    });

    it('downloads small and large objects with `cp`, byte for byte', async () => {
      await sdk.bucket(BUCKET).file('down/small.log').save(small, { resumable: false });
      await sdk.bucket(BUCKET).file('down/big.bin').save(big, { resumable: false });
      ok(await gcloud(['storage', 'cp', `gs://${BUCKET}/down/small.log`, path.join(dir, 's.out')]));
      ok(await gcloud(['storage', 'cp', `gs://${BUCKET}/down/big.bin`, path.join(dir, 'b.out')]));
      expect((await readFile(path.join(dir, 's.out'))).equals(small)).toBe(true);
      expect((await readFile(path.join(dir, 'b.out'))).equals(big)).toBe(true);
    });

    it('prints an object with `cat`, byte for byte', async () => {
      await sdk.bucket(BUCKET).file('cat/small.log').save(small, { resumable: false });
      const out = ok(await gcloud(['storage', 'cat', `gs://${BUCKET}/cat/small.log`]));
      expect(out.stdout.equals(small)).toBe(true);
    });
  },
);
