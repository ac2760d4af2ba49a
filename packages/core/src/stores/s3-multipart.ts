import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline, Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import type {
  ChecksumAlgorithm,
  CompletedPart,
  S3Client,
  ServerSideEncryption,
  StorageClass,
} from '@aws-sdk/client-s3';
import { AbortedError, IntegrityError } from '../errors.js';
import type { LocalLogFile, UploadOptions } from '../store.js';
import { throwIfAborted } from './store-checks.js';

/** S3's multipart limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
const MAX_PARTS = 10_000;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
/** Parts of one upload() in flight at once; each holds one part in memory. */
const UPLOAD_CONCURRENCY = 4;
const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';

/** What the multipart helpers need from the store: the loaded SDK, the client, the write settings. */
export interface S3Context {
  readonly sdk: typeof import('@aws-sdk/client-s3');
  readonly client: S3Client;
  readonly bucket: string;
  readonly sse?: ServerSideEncryption;
  readonly kmsKeyId?: string;
  readonly storageClass?: StorageClass;
  readonly checksumAlgorithm?: ChecksumAlgorithm;
  /**
   * Whether UploadPartCopy works. Assumed until the server answers NotImplemented (s3rver 3.7
   * and some S3-compatible stores), then finish() streams those chunks instead.
   */
  partCopy: boolean;
}

/** SSE and the extra checksum: every object tasklog writes carries them, chunks included. */
export function writeParams(ctx: S3Context) {
  return {
    ...(ctx.sse ? { ServerSideEncryption: ctx.sse } : {}),
    ...(ctx.kmsKeyId ? { SSEKMSKeyId: ctx.kmsKeyId } : {}),
    ...(ctx.checksumAlgorithm ? { ChecksumAlgorithm: ctx.checksumAlgorithm } : {}),
  };
}

/**
 * Settings of a finished log's object. The storage class applies to finished logs only: chunks
 * live minutes and are read back at finish, so an infrequent-access class would bill its minimum
 * storage duration for each and an archive class would make them unreadable.
 */
export function finalParams(
  ctx: S3Context,
  expected: { size: number; sha256: string },
  contentEncoding?: 'gzip',
) {
  return {
    ...writeParams(ctx),
    ...(ctx.storageClass ? { StorageClass: ctx.storageClass } : {}),
    ContentType: TEXT_CONTENT_TYPE,
    ...(contentEncoding ? { ContentEncoding: contentEncoding } : {}),
    Metadata: { 'tasklog-size': String(expected.size), 'tasklog-sha256': expected.sha256 },
  };
}

/** A chunk object of a running attempt, as listed. */
export interface ChunkObject {
  key: string;
  offset: number;
  size: number;
  /** Unquoted ETag from the listing: the MD5 of the chunk (a single PutObject), unless SSE-KMS. */
  etag: string;
}

interface PartRecord {
  PartNumber: number;
  ETag: string;
  /** Hex MD5 of the part's bytes. */
  md5: string;
  /** The part's checksum in `ctx.checksumAlgorithm`, when one is configured. */
  checksum?: string;
}

/**
 * Builds the finished log `key` from the contiguous run of `chunks` with one multipart upload,
 * without holding the log in memory: a chunk of at least the minimum part size that starts a part
 * is copied server-side (UploadPartCopy); other bytes are streamed (GetObject) into one part
 * buffer and uploaded once it is large enough. Only the last part may be smaller than 5 MiB.
 *
 * Verification before the object is trusted: the bytes this function streamed are hashed (sha256
 * against `expected`, checked before CompleteMultipartUpload); the ETag S3 computes from the parts
 * is compared with the one expected from their MD5s; the size is checked with HeadObject. When
 * some parts were copied and `sha256Known` is false (the writer did not see every byte itself),
 * the object is read back once and hashed. On a mismatch the object is deleted and
 * IntegrityError thrown; the chunks are the caller's to keep.
 */
export async function assembleFromChunks(
  ctx: S3Context,
  key: string,
  chunks: readonly ChunkObject[],
  expected: { size: number; sha256: string },
  sha256Known: boolean,
  signal: AbortSignal | undefined,
): Promise<void> {
  const { sdk, client, bucket } = ctx;
  const size = chunks.reduce((n, c) => n + c.size, 0);
  // Every part but the last is at least `minPart`, so the part count stays within 10,000.
  const minPart = Math.max(MIN_PART_SIZE, Math.ceil(size / (MAX_PARTS - 1)));
  const partTarget = Math.max(DEFAULT_PART_SIZE, minPart);
  const created = await client.send(
    new sdk.CreateMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      ...finalParams(ctx, expected),
    }),
    { abortSignal: signal },
  );
  const uploadId = created.UploadId!;
  const parts: PartRecord[] = [];
  const sha256 = createHash('sha256');
  const wholeMd5 = createHash('md5');
  let streamedAll = true;
  let streamed = 0;
  let buffer: Buffer | undefined;
  let filled = 0;

  const uploadBuffered = async () => {
    const body = buffer!.subarray(0, filled);
    const md5 = createHash('md5').update(body).digest();
    const res = await client.send(
      new sdk.UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: parts.length + 1,
        Body: body,
        ContentLength: body.length,
        ContentMD5: md5.toString('base64'),
        ...(ctx.checksumAlgorithm ? { ChecksumAlgorithm: ctx.checksumAlgorithm } : {}),
      }),
      { abortSignal: signal },
    );
    parts.push(partRecord(ctx, parts.length + 1, res, md5.toString('hex')));
    filled = 0;
  };

  try {
    for (const chunk of chunks) {
      if (filled >= MIN_PART_SIZE) await uploadBuffered();
      if (filled === 0 && ctx.partCopy && chunk.size >= minPart && chunk.size <= MAX_PART_SIZE) {
        const copied = await copyPart(ctx, key, uploadId, parts.length + 1, chunk, signal);
        if (copied) {
          parts.push(copied);
          streamedAll = false;
          continue;
        }
      }
      buffer ??= Buffer.allocUnsafe(partTarget);
      const res = await client.send(new sdk.GetObjectCommand({ Bucket: bucket, Key: chunk.key }), {
        abortSignal: signal,
      });
      let got = 0;
      for await (const raw of res.Body as AsyncIterable<Uint8Array>) {
        let piece = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
        got += piece.length;
        sha256.update(piece);
        wholeMd5.update(piece);
        while (piece.length > 0) {
          const n = Math.min(piece.length, partTarget - filled);
          piece.copy(buffer, filled, 0, n);
          filled += n;
          piece = piece.subarray(n);
          if (filled === partTarget) await uploadBuffered();
        }
      }
      if (got !== chunk.size) {
        throw new IntegrityError(
          `chunk s3://${bucket}/${chunk.key} holds ${got} bytes, the listing said ${chunk.size}; chunks kept`,
        );
      }
      streamed += got;
    }
    if (filled > 0) await uploadBuffered();
    if (streamedAll) {
      const actual = sha256.digest('hex');
      if (streamed !== expected.size || actual !== expected.sha256) {
        throw new IntegrityError(
          `the chunks of s3://${bucket}/${key} hold ${streamed} bytes with sha256 ${actual}, expected ${expected.size} bytes with sha256 ${expected.sha256}; chunks kept`,
        );
      }
    }
    throwIfAborted(signal);
  } catch (err) {
    await abortUpload(ctx, key, uploadId);
    throw err;
  }
  const done = await complete(ctx, key, uploadId, parts, signal);
  await verifyStored(ctx, key, {
    etag: done.ETag,
    parts,
    wholeMd5: streamedAll ? wholeMd5.digest('hex') : undefined,
    expected,
    sha256Verified: streamedAll || sha256Known,
    signal,
  });
}

/** UploadPartCopy of a whole chunk; undefined when the server does not implement it. */
async function copyPart(
  ctx: S3Context,
  key: string,
  uploadId: string,
  partNumber: number,
  chunk: ChunkObject,
  signal: AbortSignal | undefined,
): Promise<PartRecord | undefined> {
  try {
    const res = await ctx.client.send(
      new ctx.sdk.UploadPartCopyCommand({
        Bucket: ctx.bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        CopySource: `${ctx.bucket}/${chunk.key.split('/').map(encodeURIComponent).join('/')}`,
        // The chunk must still be the one listed: a flush retried after a timeout may have
        // replaced it with a longer one.
        CopySourceIfMatch: `"${chunk.etag}"`,
      }),
      { abortSignal: signal },
    );
    const r = res.CopyPartResult ?? {};
    return partRecord(ctx, partNumber, r, chunk.etag);
  } catch (err) {
    if (!isNotImplemented(err)) throw err;
    ctx.partCopy = false;
    return undefined;
  }
}

function partRecord(
  ctx: S3Context,
  partNumber: number,
  res: { ETag?: string | undefined },
  md5: string,
): PartRecord {
  const etag = unquote(res.ETag ?? '');
  // With SSE-KMS an ETag is not the MD5 of the data, so there is nothing to compare.
  if (ctx.sse !== 'aws:kms' && etag !== md5) {
    throw new IntegrityError(
      `S3 stored part ${partNumber} with ETag ${etag}, but its MD5 is ${md5} (s3://${ctx.bucket})`,
    );
  }
  const checksum = ctx.checksumAlgorithm
    ? (res as Record<string, unknown>)[`Checksum${ctx.checksumAlgorithm}`]
    : undefined;
  return {
    PartNumber: partNumber,
    ETag: etag,
    md5,
    ...(typeof checksum === 'string' ? { checksum } : {}),
  };
}

async function complete(
  ctx: S3Context,
  key: string,
  uploadId: string,
  parts: readonly PartRecord[],
  signal: AbortSignal | undefined,
) {
  const sorted = [...parts].sort((a, b) => a.PartNumber - b.PartNumber);
  return ctx.client.send(
    new ctx.sdk.CompleteMultipartUploadCommand({
      Bucket: ctx.bucket,
      Key: key,
      UploadId: uploadId,
      MultipartUpload: {
        Parts: sorted.map(
          (p): CompletedPart => ({
            PartNumber: p.PartNumber,
            ETag: `"${p.ETag}"`,
            ...(p.checksum && ctx.checksumAlgorithm
              ? { [`Checksum${ctx.checksumAlgorithm}`]: p.checksum }
              : {}),
          }),
        ),
      },
    }),
    { abortSignal: signal },
  );
}

/**
 * Checks a completed multipart object before anyone trusts it; deletes it and throws
 * IntegrityError when it is not what was meant.
 */
async function verifyStored(
  ctx: S3Context,
  key: string,
  facts: {
    etag: string | undefined;
    parts: readonly PartRecord[];
    /** Hex MD5 of the whole object, when every byte passed through this process in order. */
    wholeMd5: string | undefined;
    expected: { size: number; sha256: string };
    /** The sha256 of the parts' bytes is already known to equal `expected.sha256`. */
    sha256Verified: boolean;
    signal: AbortSignal | undefined;
  },
): Promise<void> {
  const { expected, signal } = facts;
  const where = `s3://${ctx.bucket}/${key}`;
  const problems: string[] = [];
  const etag = etagCheck(ctx, facts.etag, facts.parts, facts.wholeMd5);
  if (etag === 'mismatch') problems.push(`its ETag ${facts.etag} does not match its parts`);
  const head = await ctx.client.send(
    new ctx.sdk.HeadObjectCommand({ Bucket: ctx.bucket, Key: key }),
    {
      abortSignal: signal,
    },
  );
  if (head.ContentLength !== expected.size) {
    problems.push(`it holds ${head.ContentLength} bytes, expected ${expected.size}`);
  }
  if (problems.length === 0 && (!facts.sha256Verified || etag === 'unknown')) {
    // Nothing proves the stored bytes yet (parts copied server-side from chunks this process
    // did not write, SSE-KMS ETags, or a store whose ETag is neither form): read them back once.
    const back = await readBackDigest(ctx, key, signal);
    if (back.size !== expected.size || back.sha256 !== expected.sha256) {
      problems.push(`it reads back as ${back.size} bytes with sha256 ${back.sha256}`);
    }
  }
  if (problems.length > 0) {
    await ctx.client
      .send(new ctx.sdk.DeleteObjectCommand({ Bucket: ctx.bucket, Key: key }))
      .catch(() => undefined);
    throw new IntegrityError(
      `${where} was assembled wrong and removed: ${problems.join('; ')} (expected ${expected.size} bytes with sha256 ${expected.sha256})`,
    );
  }
}

/**
 * `ok` when the ETag proves the object is the listed parts in order, `mismatch` when it proves
 * otherwise, `unknown` when it cannot tell.
 */
function etagCheck(
  ctx: S3Context,
  rawEtag: string | undefined,
  parts: readonly PartRecord[],
  wholeMd5: string | undefined,
): 'ok' | 'mismatch' | 'unknown' {
  if (ctx.sse === 'aws:kms' || rawEtag === undefined) return 'unknown';
  const etag = unquote(rawEtag);
  if (/^[0-9a-f]{32}-[0-9]+$/.test(etag)) {
    const sorted = [...parts].sort((a, b) => a.PartNumber - b.PartNumber);
    return etag === compositeEtag(sorted.map((p) => p.md5)) ? 'ok' : 'mismatch';
  }
  // S3 names a multipart object md5(part MD5s)-N; s3rver and some S3-compatible stores answer
  // the MD5 of the whole object instead, which only a caller that saw every byte can check.
  if (/^[0-9a-f]{32}$/.test(etag) && wholeMd5 !== undefined) {
    return etag === wholeMd5 ? 'ok' : 'mismatch';
  }
  return 'unknown';
}

/** S3's ETag of a multipart object: the MD5 of the parts' binary MD5s, `-`, the part count. */
export function compositeEtag(partMd5Hex: readonly string[]): string {
  const md5 = createHash('md5');
  for (const hex of partMd5Hex) md5.update(Buffer.from(hex, 'hex'));
  return `${md5.digest('hex')}-${partMd5Hex.length}`;
}

/** Size and sha256 of an object's stored bytes, streamed. */
export async function readBackDigest(
  ctx: S3Context,
  key: string,
  signal: AbortSignal | undefined,
): Promise<{ size: number; sha256: string }> {
  const res = await ctx.client.send(
    new ctx.sdk.GetObjectCommand({ Bucket: ctx.bucket, Key: key }),
    {
      abortSignal: signal,
    },
  );
  const hash = createHash('sha256');
  let size = 0;
  for await (const piece of res.Body as AsyncIterable<Uint8Array>) {
    hash.update(piece);
    size += piece.length;
  }
  return { size, sha256: hash.digest('hex') };
}

/**
 * Best effort: an abandoned multipart upload only costs storage until a bucket lifecycle rule
 * (AbortIncompleteMultipartUpload) removes it. s3rver 3.7 does not implement this call at all.
 */
async function abortUpload(ctx: S3Context, key: string, uploadId: string): Promise<void> {
  await ctx.client
    .send(
      new ctx.sdk.AbortMultipartUploadCommand({ Bucket: ctx.bucket, Key: key, UploadId: uploadId }),
    )
    .catch(() => undefined);
}

/** What upload() keeps in its journal between runs. */
interface UploadState {
  v: 1;
  key: string;
  uploadId: string;
  size: number;
  sha256: string;
  partSize: number;
  parts: PartRecord[];
}

function parseState(raw: unknown): Partial<UploadState> | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  return raw as Partial<UploadState>;
}

/**
 * Uploads a finished local file as the object `key` with a resumable multipart upload (see
 * S3Store.upload). The caller has checked that the object does not exist yet.
 */
export async function uploadFile(
  ctx: S3Context,
  key: string,
  file: LocalLogFile,
  options: UploadOptions & { partSize?: number },
): Promise<void> {
  const { journal, onProgress, signal } = options;
  const { sdk, client, bucket } = ctx;
  const partSize = Math.min(
    MAX_PART_SIZE,
    Math.max(options.partSize ?? DEFAULT_PART_SIZE, Math.ceil(file.size / MAX_PARTS)),
  );
  const partCount = Math.ceil(file.size / partSize);
  const partLength = (n: number) => Math.min(partSize, file.size - (n - 1) * partSize);

  const saved = parseState(await journal?.load());
  let state: UploadState | undefined;
  const done = new Map<number, PartRecord>();
  if (
    saved?.v === 1 &&
    saved.key === key &&
    saved.size === file.size &&
    saved.sha256 === file.sha256 &&
    saved.partSize === partSize &&
    typeof saved.uploadId === 'string' &&
    Array.isArray(saved.parts)
  ) {
    state = saved as UploadState;
    const present = await listParts(ctx, key, state.uploadId, signal);
    if (present === 'gone') state = undefined;
    else {
      // ListParts is the truth where the server has it. s3rver 3.7 does not implement it; then
      // the journal is trusted (each entry was written after the server acknowledged that part
      // with our MD5), and a part that vanished fails CompleteMultipartUpload.
      for (const part of state.parts) {
        const there = present === 'unsupported' ? undefined : present.get(part.PartNumber);
        if (
          present === 'unsupported' ||
          (there && unquote(there.ETag) === part.ETag && there.size === partLength(part.PartNumber))
        ) {
          done.set(part.PartNumber, part);
        }
      }
    }
  } else if (typeof saved?.uploadId === 'string' && typeof saved.key === 'string') {
    // An upload of another file (or of this one, compressed or cut differently): drop it.
    await abortUpload(ctx, saved.key, saved.uploadId);
  }
  if (!state) {
    const created = await client.send(
      new sdk.CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ...finalParams(ctx, file) }),
      { abortSignal: signal },
    );
    state = {
      v: 1,
      key,
      uploadId: created.UploadId!,
      size: file.size,
      sha256: file.sha256,
      partSize,
      parts: [],
    };
  }
  const uploadId = state.uploadId;
  const snapshot = (): UploadState => ({
    ...state!,
    parts: [...done.values()].sort((a, b) => a.PartNumber - b.PartNumber),
  });
  let saving: Promise<void> = Promise.resolve();
  const save = () => {
    const next = saving.then(() => journal?.save(snapshot()));
    saving = next.catch(() => undefined);
    return next;
  };
  await save();

  let stored = [...done.keys()].reduce((n, p) => n + partLength(p), 0);
  onProgress?.(stored, file.size);
  const pending: number[] = [];
  for (let n = 1; n <= partCount; n++) if (!done.has(n)) pending.push(n);

  const fh = await open(file.path, 'r');
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
      const md5 = createHash('md5').update(body).digest();
      const res = await client.send(
        new sdk.UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: n,
          Body: body,
          ContentLength: body.length,
          ContentMD5: md5.toString('base64'),
          ...(ctx.checksumAlgorithm ? { ChecksumAlgorithm: ctx.checksumAlgorithm } : {}),
        }),
        { abortSignal: stop.signal },
      );
      done.set(n, partRecord(ctx, n, res, md5.toString('hex')));
      stored += body.length;
      await save();
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
    await saving;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await fh.close();
  }
  if (failure) throw failure.err;
  throwIfAborted(signal);

  let completed: Awaited<ReturnType<typeof complete>>;
  try {
    completed = await complete(ctx, key, uploadId, [...done.values()], signal);
  } catch (err) {
    const name = (err as { name?: string }).name;
    // The upload expired or a part the journal lists is not there: the next run starts over.
    if (name === 'NoSuchUpload' || name === 'InvalidPart') await journal?.save(null);
    throw err;
  }
  try {
    await verifyStored(ctx, key, {
      etag: completed.ETag,
      parts: [...done.values()],
      wholeMd5: undefined,
      expected: file,
      // Each part's bytes came from the file whose sha256 the caller measured, S3 checked each
      // part's MD5, and a composite ETag proves their order.
      sha256Verified: true,
      signal,
    });
  } finally {
    await journal?.save(null);
  }
}

/** The parts the server holds for an upload, `gone` when the upload no longer exists. */
async function listParts(
  ctx: S3Context,
  key: string,
  uploadId: string,
  signal: AbortSignal | undefined,
): Promise<Map<number, { ETag: string; size: number }> | 'gone' | 'unsupported'> {
  const out = new Map<number, { ETag: string; size: number }>();
  let marker: string | undefined;
  try {
    do {
      const res = await ctx.client.send(
        new ctx.sdk.ListPartsCommand({
          Bucket: ctx.bucket,
          Key: key,
          UploadId: uploadId,
          ...(marker ? { PartNumberMarker: marker } : {}),
        }),
        { abortSignal: signal },
      );
      for (const p of res.Parts ?? []) {
        if (p.PartNumber !== undefined && p.ETag) {
          out.set(p.PartNumber, { ETag: p.ETag, size: p.Size ?? -1 });
        }
      }
      marker = res.IsTruncated ? res.NextPartNumberMarker : undefined;
    } while (marker);
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchUpload') return 'gone';
    if (isNotImplemented(err)) return 'unsupported';
    throw err;
  }
  return out;
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

/**
 * Streams `source` (the uncompressed log) through sha256 and gzip into `key` with lib-storage's
 * Upload, with `expected` as the object's metadata. The sha256 and size are checked when the
 * source ends, before the last part is handed over, so a mismatch fails the upload before it is
 * completed. Offsets in the metadata and everywhere else refer to the uncompressed log.
 */
export async function uploadGzip(
  ctx: S3Context,
  key: string,
  source: Readable,
  expected: { size: number; sha256: string },
  options: { signal?: AbortSignal; onBytes?: (uncompressed: number) => void },
): Promise<void> {
  const { Upload } = await import('@aws-sdk/lib-storage');
  const { signal, onBytes } = options;
  const hash = createHash('sha256');
  let size = 0;
  let compressed = 0;
  let integrity: IntegrityError | undefined;
  const check = new Transform({
    transform(piece: Buffer, _enc, cb) {
      hash.update(piece);
      size += piece.length;
      onBytes?.(size);
      cb(null, piece);
    },
    flush(cb) {
      const actual = hash.digest('hex');
      if (size === expected.size && actual === expected.sha256) return cb();
      integrity = new IntegrityError(
        `the log for s3://${ctx.bucket}/${key} has ${size} bytes with sha256 ${actual}, expected ${expected.size} bytes with sha256 ${expected.sha256}; nothing stored`,
      );
      cb(integrity);
    },
  });
  const count = new Transform({
    transform(piece: Buffer, _enc, cb) {
      compressed += piece.length;
      cb(null, piece);
    },
  });
  // Not lib-storage's own abortController: it rejects done() at once while its part uploads run
  // on unobserved. Destroying the source fails its reads instead, and done() settles after them.
  const onAbort = () =>
    source.destroy(new AbortedError('upload was aborted', { cause: signal?.reason }));
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  const body = pipeline(source, check, createGzip(), count, () => undefined);
  const upload = new Upload({
    client: ctx.client,
    params: { Bucket: ctx.bucket, Key: key, Body: body, ...finalParams(ctx, expected, 'gzip') },
    partSize: DEFAULT_PART_SIZE,
    queueSize: 2,
    leavePartsOnError: false,
  });
  try {
    await upload.done();
  } catch (err) {
    // lib-storage aborts the multipart upload on failure and lets that call's error replace the
    // original one (s3rver answers AbortMultipartUpload with MethodNotAllowed): ours wins.
    throw (
      integrity ?? (signal?.aborted ? new AbortedError('upload was aborted', { cause: err }) : err)
    );
  } finally {
    signal?.removeEventListener('abort', onAbort);
    body.destroy();
  }
  const problem =
    integrity?.message ??
    (await (async () => {
      const head = await ctx.client.send(
        new ctx.sdk.HeadObjectCommand({ Bucket: ctx.bucket, Key: key }),
        { abortSignal: signal },
      );
      return head.ContentLength === compressed
        ? undefined
        : `it holds ${head.ContentLength} bytes, ${compressed} were sent`;
    })());
  if (problem) {
    await ctx.client
      .send(new ctx.sdk.DeleteObjectCommand({ Bucket: ctx.bucket, Key: key }))
      .catch(() => undefined);
    throw new IntegrityError(`s3://${ctx.bucket}/${key} was stored wrong and removed: ${problem}`);
  }
}

/** NotImplemented (501) or MethodNotAllowed (405): the server lacks the API, e.g. s3rver 3.7. */
export function isNotImplemented(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  const status = e?.$metadata?.httpStatusCode;
  return (
    e?.name === 'NotImplemented' ||
    e?.name === 'MethodNotAllowed' ||
    status === 501 ||
    status === 405
  );
}

export function unquote(etag: string): string {
  return etag.replace(/"/g, '').toLowerCase();
}
