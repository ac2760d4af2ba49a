import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { IntegrityError } from '../../errors.js';
import type { LocalLogFile, UploadOptions } from '../../store.js';
import { localFileHandle, throwIfAborted } from '../shared/store-checks.js';
import type { S3Context } from './client.js';
import { finalParams } from './final-object.js';
import { MAX_PART_SIZE, MAX_PARTS } from './limits.js';
import type { PartRecord } from './multipart-journal.js';
import { MultipartUpload } from './multipart-upload.js';
import { putVerified, verifyAndStamp } from './verify.js';

/** Parts of one upload() in flight at once; each holds one part in memory. */
const UPLOAD_CONCURRENCY = 4;

/**
 * Uploads a finished local file as the object `key` (see S3Store.upload), reading it once. A file
 * of at most one part is read whole, checked against `file.size` and `file.sha256`, and stored
 * with one PutObject. A larger one is a journaled multipart upload: the parts are read in order,
 * each hashed as it is read (sha256 and MD5 of the whole file, MD5 of the part), then sent with
 * `UPLOAD_CONCURRENCY` in flight (a part an earlier, killed process stored with the same MD5 is
 * kept). The upload is completed only when the bytes read hash to `file.sha256`; else it is
 * abandoned and nothing is stored. S3 checked each part against its Content-MD5, so the object
 * holds the bytes hashed here; once its ETag and size checked out after completion, it gets
 * `tasklog-sha256` (`verifyAndStamp`).
 */
export async function uploadFile(
  ctx: S3Context,
  key: string,
  file: LocalLogFile,
  options: Pick<UploadOptions, 'journal' | 'onProgress' | 'signal'>,
): Promise<void> {
  const { journal, onProgress, signal } = options;
  const partSize = Math.min(
    MAX_PART_SIZE,
    Math.max(ctx.partSize, Math.ceil(file.size / MAX_PARTS)),
  );
  const partCount = Math.ceil(file.size / partSize);
  const { fh, release } = await localFileHandle(file);
  try {
    if (partCount <= 1) {
      onProgress?.(0, file.size);
      const body = await readPart(fh, 0, file.size, file.path, Buffer.allocUnsafe(file.size));
      await assertEnd(fh, file);
      await putVerified(ctx, key, body, file, undefined, { journal, signal });
      onProgress?.(file.size, file.size);
      return;
    }
    const upload = await MultipartUpload.begin(
      ctx,
      key,
      { size: file.size, sha256: file.sha256, layout: `file/${partSize}` },
      finalParams(ctx, file.size),
      journal,
      signal,
    );
    const { parts, wholeMd5 } = await sendParts(upload, fh, file, partSize, {
      onProgress,
      signal,
    });
    const etag = await upload.complete(parts, signal);
    await verifyAndStamp(ctx, key, {
      etag,
      parts,
      wholeMd5,
      storedSize: file.size,
      expected: file,
      // The parts hold the bytes hashed above (S3 checked each against its Content-MD5), and
      // the ETag check proves their order.
      sha256Verified: true,
      gzip: false,
      signal,
    });
    await upload.forget();
  } finally {
    await release();
  }
}

/**
 * Reads the file's parts in order, hashing each as it is read, and sends those the upload does
 * not hold yet, `UPLOAD_CONCURRENCY` at a time (one buffer each, reused). Returns the parts in
 * order and the whole file's MD5 once every part is stored and the file hashed to `file.sha256`;
 * otherwise abandons the upload and throws (IntegrityError when the file is not the one meant).
 */
async function sendParts(
  upload: MultipartUpload,
  fh: FileHandle,
  file: LocalLogFile,
  partSize: number,
  options: Pick<UploadOptions, 'onProgress' | 'signal'>,
): Promise<{ parts: PartRecord[]; wholeMd5: string }> {
  const { onProgress, signal } = options;
  const partCount = Math.ceil(file.size / partSize);
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  const parts: PartRecord[] = [];
  const free = Array.from({ length: Math.min(UPLOAD_CONCURRENCY, partCount) }, () =>
    Buffer.allocUnsafe(partSize),
  );
  const inFlight = new Set<Promise<void>>();
  // One failed part stops the others at once instead of letting them run on unobserved.
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  let failure: { err: unknown } | undefined;
  let stored = 0;
  try {
    for (let n = 1; n <= partCount && failure === undefined; n++) {
      throwIfAborted(signal);
      while (free.length === 0) await Promise.race(inFlight);
      if (failure !== undefined) break;
      const buffer = free.pop()!;
      const length = Math.min(partSize, file.size - (n - 1) * partSize);
      const body = await readPart(fh, (n - 1) * partSize, length, file.path, buffer);
      sha256.update(body);
      md5.update(body);
      const partMd5 = createHash('md5').update(body).digest();
      const kept = upload.reusable(n, { size: length, md5: partMd5.toString('hex') });
      if (kept) {
        parts[n - 1] = kept;
        free.push(buffer);
        stored += length;
        onProgress?.(stored, file.size);
        continue;
      }
      const sending = upload.sendPart(n, body, stop.signal, partMd5).then(
        (part) => {
          parts[n - 1] = part;
          stored += length;
          onProgress?.(stored, file.size);
        },
        (err: unknown) => {
          failure ??= { err };
          stop.abort(err);
        },
      );
      const tracked = sending.finally(() => {
        inFlight.delete(tracked);
        free.push(buffer);
      });
      inFlight.add(tracked);
    }
    await Promise.all(inFlight);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (failure) throw failure.err;
  throwIfAborted(signal);
  await assertEnd(fh, file).catch(async (err: unknown) => {
    await upload.abandon();
    throw err;
  });
  const digest = sha256.digest('hex');
  if (digest !== file.sha256) {
    await upload.abandon();
    throw new IntegrityError(
      `${file.path} holds ${file.size} bytes with sha256 ${digest}, expected sha256 ${file.sha256}; nothing stored`,
    );
  }
  return { parts, wholeMd5: md5.digest('hex') };
}

/** IntegrityError when the file goes on past `file.size` (it grew after it was measured). */
async function assertEnd(fh: FileHandle, file: LocalLogFile): Promise<void> {
  const { bytesRead } = await fh.read(Buffer.alloc(1), 0, 1, file.size);
  if (bytesRead > 0) {
    throw new IntegrityError(
      `${file.path} holds more than the ${file.size} bytes expected; nothing stored`,
    );
  }
}

/** Reads `length` bytes at `start` into the front of `buffer`; returns that view. */
async function readPart(
  fh: FileHandle,
  start: number,
  length: number,
  path: string,
  buffer: Buffer,
): Promise<Buffer> {
  const buf = buffer.subarray(0, length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, start + got);
    if (bytesRead === 0) {
      throw new IntegrityError(`${path} ended at byte ${start + got}, before its measured size`);
    }
    got += bytesRead;
  }
  return buf;
}
