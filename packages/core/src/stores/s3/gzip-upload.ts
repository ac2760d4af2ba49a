import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { IntegrityError } from '../../errors.js';
import type { UploadJournal } from '../../store.js';
import type { S3Context } from './client.js';
import { finalParams } from './final-object.js';
import type { PartRecord } from './multipart-journal.js';
import { MultipartUpload } from './multipart-upload.js';
import { putVerified, verifyAndStamp } from './verify.js';

/**
 * Stores `source` (the uncompressed log) gzip-compressed as `key`. Compressed output of at most
 * one part is one PutObject. Beyond that it is a journaled multipart upload with one part in
 * flight; zlib compresses the same input to the same output, so a resumed upload compresses the
 * log again and sends only the parts whose MD5 S3 does not hold yet. The log's sha256 and size are
 * checked when the source ends, before CompleteMultipartUpload, so a mismatch never becomes an
 * object. `tasklog-size` and every offset refer to the uncompressed log.
 */
export async function uploadGzip(
  ctx: S3Context,
  key: string,
  source: AsyncIterable<Uint8Array> | Readable,
  expected: { size: number; sha256: string },
  options: {
    journal?: UploadJournal;
    signal?: AbortSignal;
    onBytes?: (uncompressed: number) => void;
  },
): Promise<void> {
  const { journal, signal, onBytes } = options;
  const partSize = ctx.partSize;
  const log = createHash('sha256');
  let size = 0;
  const compressedMd5 = createHash('md5');
  let compressed = 0;
  const buffer = Buffer.allocUnsafe(partSize);
  let filled = 0;
  let upload = undefined as MultipartUpload | undefined;
  const parts: PartRecord[] = [];

  const sendBuffered = async () => {
    upload ??= await MultipartUpload.begin(
      ctx,
      key,
      { ...expected, layout: `gzip/${partSize}` },
      finalParams(ctx, expected.size, 'gzip'),
      journal,
      signal,
    );
    parts.push(await upload.storePart(parts.length + 1, buffer.subarray(0, filled), signal));
    filled = 0;
  };

  const input = source instanceof Readable ? source : Readable.from(source);
  async function* hashed(pieces: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const piece of pieces) {
      log.update(piece);
      size += piece.length;
      onBytes?.(size);
      yield piece;
    }
  }
  await pipeline(
    input,
    hashed,
    createGzip(),
    async (out: AsyncIterable<Buffer>) => {
      for await (let piece of out) {
        compressedMd5.update(piece);
        compressed += piece.length;
        while (piece.length > 0) {
          const n = Math.min(piece.length, partSize - filled);
          piece.copy(buffer, filled, 0, n);
          filled += n;
          piece = piece.subarray(n);
          if (filled === partSize) await sendBuffered();
        }
      }
    },
    { signal },
  );
  const actual = log.digest('hex');
  if (size !== expected.size || actual !== expected.sha256) {
    if (upload) await upload.abandon();
    throw new IntegrityError(
      `the log for s3://${ctx.bucket}/${key} has ${size} bytes with sha256 ${actual}, expected ${expected.size} bytes with sha256 ${expected.sha256}; nothing stored`,
    );
  }
  if (!upload) {
    const body = Buffer.from(buffer.subarray(0, filled));
    await putVerified(ctx, key, body, expected, { size, sha256: actual }, { journal, signal });
    return;
  }
  if (filled > 0) await sendBuffered();
  const etag = await upload.complete(parts, signal);
  await verifyAndStamp(ctx, key, {
    etag,
    parts,
    wholeMd5: compressedMd5.digest('hex'),
    storedSize: compressed,
    expected,
    // Every byte of the log passed through the hash above on its way into the parts.
    sha256Verified: true,
    gzip: true,
    signal,
  });
  await upload.forget();
}
