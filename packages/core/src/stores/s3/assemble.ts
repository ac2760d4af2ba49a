import { createHash } from 'node:crypto';
import { IntegrityError } from '../../errors.js';
import type { UploadJournal } from '../../store.js';
import { throwIfAborted } from '../shared/store-checks.js';
import type { S3Context } from './client.js';
import { finalParams } from './final-object.js';
import type { ChunkObject } from './layout.js';
import { MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE } from './limits.js';
import type { PartRecord } from './multipart-journal.js';
import { MultipartUpload } from './multipart-upload.js';
import { putVerified, verifyAndStamp } from './verify.js';

/**
 * Builds the finished log `key` from the contiguous run of `chunks`, without holding the log in
 * memory. A log of at most one part is read into one buffer and stored with one PutObject
 * (`putVerified`). A larger one becomes a multipart upload, journaled so that a killed process's
 * upload is resumed by the next `finish()`: a chunk of at least the minimum part size that starts
 * a part is copied server-side (UploadPartCopy); other bytes are streamed (GetObject) into one
 * part buffer and uploaded once it is large enough. Only the last part may be smaller than 5 MiB.
 * A resumed upload reads the streamed chunks again (to hash them) but sends only the parts S3
 * does not hold yet.
 *
 * Verification before the object is trusted: the bytes streamed here are hashed (sha256 against
 * `expected`, before CompleteMultipartUpload); the ETag S3 computes from the parts is compared
 * with the one their MD5s give; the size is checked with HeadObject. When some parts were copied
 * and `sha256Known` is false (the writer did not see every byte itself), the object is read back
 * once and hashed. Only then is `tasklog-sha256` added. On a mismatch the object is deleted and
 * IntegrityError thrown; the chunks are the caller's to keep.
 */
export async function assembleFromChunks(
  ctx: S3Context,
  key: string,
  chunks: readonly ChunkObject[],
  expected: { size: number; sha256: string },
  sha256Known: boolean,
  options: { journal?: UploadJournal; signal?: AbortSignal },
): Promise<void> {
  const { journal, signal } = options;
  const size = chunks.reduce((n, c) => n + c.size, 0);
  // Every part but the last is at least `minPart`, so the part count stays within 10,000.
  const minPart = Math.max(MIN_PART_SIZE, Math.ceil(size / (MAX_PARTS - 1)));
  const partTarget = Math.max(ctx.partSize, minPart);
  if (size <= partTarget) {
    const body = Buffer.allocUnsafe(size);
    let filled = 0;
    for await (const piece of chunkBytes(ctx, chunks, signal)) {
      piece.copy(body, filled);
      filled += piece.length;
    }
    await putVerified(ctx, key, body, expected, undefined, { journal, signal });
    return;
  }
  const upload = await MultipartUpload.begin(
    ctx,
    key,
    { ...expected, layout: `chunks/${partTarget}` },
    finalParams(ctx, expected.size),
    journal,
    signal,
  );
  const parts: PartRecord[] = [];
  const sha256 = createHash('sha256');
  const wholeMd5 = createHash('md5');
  let streamedAll = true;
  let streamed = 0;
  let buffer: Buffer | undefined;
  let filled = 0;

  const sendBuffered = async () => {
    parts.push(await upload.storePart(parts.length + 1, buffer!.subarray(0, filled), signal));
    filled = 0;
  };

  try {
    for (const chunk of chunks) {
      if (filled >= MIN_PART_SIZE) await sendBuffered();
      if (filled === 0 && ctx.partCopy && chunk.size >= minPart && chunk.size <= MAX_PART_SIZE) {
        const n = parts.length + 1;
        const copied =
          upload.reusable(n, { size: chunk.size, copyOf: `${chunk.key}@${chunk.etag}` }) ??
          (await upload.copyPart(n, chunk, signal));
        if (copied) {
          parts.push(copied);
          streamedAll = false;
          continue;
        }
      }
      buffer ??= Buffer.allocUnsafe(partTarget);
      for await (const raw of chunkBytes(ctx, [chunk], signal)) {
        let piece = raw;
        sha256.update(piece);
        wholeMd5.update(piece);
        while (piece.length > 0) {
          const n = Math.min(piece.length, partTarget - filled);
          piece.copy(buffer, filled, 0, n);
          filled += n;
          piece = piece.subarray(n);
          if (filled === partTarget) await sendBuffered();
        }
      }
      streamed += chunk.size;
    }
    if (filled > 0) await sendBuffered();
    if (streamedAll) {
      const actual = sha256.digest('hex');
      if (streamed !== expected.size || actual !== expected.sha256) {
        throw new IntegrityError(
          `the chunks of s3://${ctx.bucket}/${key} hold ${streamed} bytes with sha256 ${actual}, expected ${expected.size} bytes with sha256 ${expected.sha256}; chunks kept`,
        );
      }
    }
    throwIfAborted(signal);
  } catch (err) {
    // Wrong bytes can never complete this upload; anything else (a network error, an abort)
    // leaves it in the journal for the next finish() to resume.
    if (err instanceof IntegrityError) await upload.abandon();
    throw err;
  }
  const etag = await upload.complete(parts, signal);
  await verifyAndStamp(ctx, key, {
    etag,
    parts,
    wholeMd5: streamedAll ? wholeMd5.digest('hex') : undefined,
    storedSize: expected.size,
    expected,
    sha256Verified: streamedAll || sha256Known,
    gzip: false,
    signal,
  });
  await upload.forget();
}

/** The bytes of `chunks`, in order, one GetObject at a time; checks each against its listing. */
export async function* chunkBytes(
  ctx: S3Context,
  chunks: readonly ChunkObject[],
  signal: AbortSignal | undefined,
): AsyncGenerator<Buffer> {
  for (const chunk of chunks) {
    const res = await ctx.client.send(
      new ctx.sdk.GetObjectCommand({ Bucket: ctx.bucket, Key: chunk.key }),
      { abortSignal: signal },
    );
    let got = 0;
    for await (const raw of res.Body as AsyncIterable<Uint8Array>) {
      got += raw.length;
      yield Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    }
    if (got !== chunk.size) {
      throw new IntegrityError(
        `chunk s3://${ctx.bucket}/${chunk.key} holds ${got} bytes, the listing said ${chunk.size}; chunks kept`,
      );
    }
  }
}
