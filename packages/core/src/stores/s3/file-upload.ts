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
 * Uploads a finished local file as the object `key` (see S3Store.upload). The file is read once
 * first: it must hash to `file.sha256`, and each part's MD5 is then known before anything is sent,
 * so a resumed upload keeps only parts that hold exactly those bytes and the object's ETag can be
 * checked without reading it back. A file of at most one part is one PutObject; a larger one a
 * journaled multipart upload with `UPLOAD_CONCURRENCY` parts in flight, resumed from the journal
 * after a crash, and `tasklog-sha256` is added once the completed object checked out.
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
  const partLength = (n: number) => Math.min(partSize, file.size - (n - 1) * partSize);
  const { fh, release } = await localFileHandle(file);
  try {
    const digest = await digestParts(fh, file.size, partSize, signal);
    if (digest.size !== file.size || digest.sha256 !== file.sha256) {
      throw new IntegrityError(
        `${file.path} holds ${digest.size} bytes with sha256 ${digest.sha256}, expected ${file.size} bytes with sha256 ${file.sha256}; nothing stored`,
      );
    }
    if (partCount <= 1) {
      onProgress?.(0, file.size);
      const body = await readPart(fh, 0, file.size, file.path, Buffer.allocUnsafe(file.size));
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
    const parts = new Map<number, PartRecord>();
    const pending: number[] = [];
    for (let n = 1; n <= partCount; n++) {
      const kept = upload.reusable(n, { size: partLength(n), md5: digest.partMd5[n - 1] });
      if (kept) parts.set(n, kept);
      else pending.push(n);
    }
    let stored = [...parts.keys()].reduce((sum, n) => sum + partLength(n), 0);
    onProgress?.(stored, file.size);

    // One failed part stops the others at once instead of letting them run on unobserved.
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let failure: { err: unknown } | undefined;
    let next = 0;
    const worker = async () => {
      // One part buffer per worker, reused for each of its parts: memory stays at
      // UPLOAD_CONCURRENCY × partSize, and the GC is not left with a trail of 8 MiB buffers.
      const buffer = Buffer.allocUnsafe(partSize);
      while (failure === undefined && next < pending.length) {
        throwIfAborted(signal);
        const n = pending[next++]!;
        const body = await readPart(fh, (n - 1) * partSize, partLength(n), file.path, buffer);
        if (createHash('md5').update(body).digest('hex') !== digest.partMd5[n - 1]) {
          throw new IntegrityError(`${file.path} changed while it was uploaded`);
        }
        parts.set(n, await upload.sendPart(n, body, stop.signal));
        stored += body.length;
        onProgress?.(stored, file.size);
      }
    };
    try {
      const workers = Array.from({ length: Math.min(UPLOAD_CONCURRENCY, pending.length) }, () =>
        worker().catch((err: unknown) => {
          failure ??= { err };
          stop.abort(err);
        }),
      );
      await Promise.allSettled(workers);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    if (failure) throw failure.err;
    throwIfAborted(signal);
    const ordered = [...parts.values()].sort((a, b) => a.PartNumber - b.PartNumber);
    const etag = await upload.complete(ordered, signal);
    await verifyAndStamp(ctx, key, {
      etag,
      parts: ordered,
      wholeMd5: digest.md5,
      storedSize: file.size,
      expected: file,
      // Each part's MD5 matched the pre-read file whose sha256 is `file.sha256`, and S3 checked
      // each part against that MD5 (Content-MD5); the ETag check proves their order.
      sha256Verified: true,
      gzip: false,
      signal,
    });
    await upload.forget();
  } finally {
    await release();
  }
}

/** sha256 and MD5 of a file, and the MD5 of each `partSize` piece, in one sequential read. */
async function digestParts(
  fh: FileHandle,
  size: number,
  partSize: number,
  signal: AbortSignal | undefined,
): Promise<{ size: number; sha256: string; md5: string; partMd5: string[] }> {
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  const partMd5: string[] = [];
  const buffer = Buffer.allocUnsafe(Math.min(partSize, 1 << 20));
  let part = createHash('md5');
  let inPart = 0;
  let pos = 0;
  for (;;) {
    throwIfAborted(signal);
    const want = Math.min(buffer.length, partSize - inPart);
    const { bytesRead } = await fh.read(buffer, 0, want, pos);
    if (bytesRead === 0) break;
    const piece = buffer.subarray(0, bytesRead);
    sha256.update(piece);
    md5.update(piece);
    part.update(piece);
    inPart += bytesRead;
    pos += bytesRead;
    if (inPart === partSize) {
      partMd5.push(part.digest('hex'));
      part = createHash('md5');
      inPart = 0;
    }
    if (pos > size) break; // longer than measured: the size check fails
  }
  if (inPart > 0) partMd5.push(part.digest('hex'));
  return { size: pos, sha256: sha256.digest('hex'), md5: md5.digest('hex'), partMd5 };
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
