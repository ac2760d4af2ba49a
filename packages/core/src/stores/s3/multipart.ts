import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type {
  ChecksumAlgorithm,
  CompletedPart,
  HeadObjectCommandOutput,
  S3Client,
  ServerSideEncryption,
  StorageClass,
} from '@aws-sdk/client-s3';
import { ConflictError, IntegrityError } from '../../errors.js';
import type { LocalLogFile, UploadJournal, UploadOptions } from '../../store.js';
import { localFileHandle, throwIfAborted } from '../shared/store-checks.js';

/** S3's multipart limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html). */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
const MAX_PARTS = 10_000;
export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
/**
 * CopyObject copies at most 5 GB in one request
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html); a larger log keeps no
 * `tasklog-sha256`, and readers that want to trust it read it back.
 */
const MAX_COPY_SIZE = 5 * 1024 * 1024 * 1024;
/** Parts of one upload() in flight at once; each holds one part in memory. */
const UPLOAD_CONCURRENCY = 4;
const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';
export const META_SIZE = 'tasklog-size';
export const META_SHA256 = 'tasklog-sha256';

/** What the multipart helpers need from the store: the loaded SDK, the client, the write settings. */
export interface S3Context {
  readonly sdk: typeof import('@aws-sdk/client-s3');
  readonly client: S3Client;
  readonly bucket: string;
  readonly sse?: ServerSideEncryption;
  readonly kmsKeyId?: string;
  readonly storageClass?: StorageClass;
  readonly checksumAlgorithm?: ChecksumAlgorithm;
  /** Part size of finished logs, at least 5 MiB (raised where 10,000 parts would not hold a log). */
  readonly partSize: number;
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
 * Settings of a finished log's object as it is created. The storage class applies to finished
 * logs only: chunks live minutes and are read back at finish, so an infrequent-access class would
 * bill its minimum storage duration for each and an archive class would make them unreadable.
 *
 * `tasklog-sha256` is not among them: a reader trusts it without reading the log (see
 * `LogStat.sha256`), so it is added only once the stored object has been checked (`stampVerified`),
 * or by a PutObject whose body S3 checks against its Content-MD5 before the object exists
 * (`putVerified`). `tasklog-size` is set from the start: a gzip object needs it to be read at all,
 * and a reader checks it against the bytes it inflates.
 */
export function finalParams(ctx: S3Context, size: number, contentEncoding?: 'gzip') {
  return {
    ...writeParams(ctx),
    ...(ctx.storageClass ? { StorageClass: ctx.storageClass } : {}),
    ContentType: TEXT_CONTENT_TYPE,
    ...(contentEncoding ? { ContentEncoding: contentEncoding } : {}),
    Metadata: { [META_SIZE]: String(size) },
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
  /** Bytes in the part. */
  size: number;
  /** The part's checksum in `ctx.checksumAlgorithm`, when one is configured. */
  checksum?: string;
  /** For a part copied server-side (UploadPartCopy): `<chunk key>@<chunk ETag>`. */
  copyOf?: string;
}

/**
 * What a multipart upload keeps in the caller's journal, saved before its first part is sent and
 * after every part, so that a process killed in the middle leaves an upload the next one resumes
 * (or `sweep()` aborts) rather than parts S3 bills until a lifecycle rule removes them.
 */
interface MultipartState {
  v: 2;
  key: string;
  uploadId: string;
  /** The log being stored, and how it is cut into parts: only the same one can reuse the parts. */
  size: number;
  sha256: string;
  layout: string;
  parts: PartRecord[];
}

function parseState(raw: unknown): Partial<MultipartState> | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const s = raw as Partial<MultipartState>;
  return typeof s.key === 'string' && typeof s.uploadId === 'string' ? s : undefined;
}

/** One multipart upload, journaled, possibly resumed from an earlier process's journal. */
class MultipartUpload {
  readonly #stored = new Map<number, PartRecord>();
  #saving: Promise<void> = Promise.resolve();

  private constructor(
    private readonly ctx: S3Context,
    private readonly key: string,
    private readonly uploadId: string,
    private readonly log: { size: number; sha256: string; layout: string },
    private readonly journal: UploadJournal | undefined,
  ) {}

  /**
   * Resumes the upload the journal names when it stores the same log cut the same way and S3
   * still has it; otherwise aborts the journal's upload (best effort) and starts a new one,
   * recording its id in the journal before returning.
   */
  static async begin(
    ctx: S3Context,
    key: string,
    log: { size: number; sha256: string; layout: string },
    createParams: ReturnType<typeof finalParams>,
    journal: UploadJournal | undefined,
    signal: AbortSignal | undefined,
  ): Promise<MultipartUpload> {
    const saved = parseState(await journal?.load());
    if (
      saved?.v === 2 &&
      saved.key === key &&
      saved.size === log.size &&
      saved.sha256 === log.sha256 &&
      saved.layout === log.layout &&
      Array.isArray(saved.parts)
    ) {
      const present = await listParts(ctx, key, saved.uploadId!, signal);
      if (present !== 'gone') {
        const upload = new MultipartUpload(ctx, key, saved.uploadId!, log, journal);
        for (const part of saved.parts) {
          // ListParts is the truth where the server has it. s3rver 3.7 does not implement it;
          // then the journal is trusted (each entry was saved after the server acknowledged that
          // part with our Content-MD5), and a part that vanished fails CompleteMultipartUpload.
          const there = present === 'unsupported' ? undefined : present.get(part.PartNumber);
          if (
            present === 'unsupported' ||
            (there && unquote(there.ETag) === part.ETag && there.size === part.size)
          ) {
            upload.#stored.set(part.PartNumber, part);
          }
        }
        return upload;
      }
    } else if (saved) {
      // An upload of another log, or of this one cut differently: its parts are of no use.
      await abortUpload(ctx, saved.key!, saved.uploadId!, signal);
    }
    const created = await ctx.client.send(
      new ctx.sdk.CreateMultipartUploadCommand({ Bucket: ctx.bucket, Key: key, ...createParams }),
      { abortSignal: signal },
    );
    const upload = new MultipartUpload(ctx, key, created.UploadId!, log, journal);
    await upload.#save();
    return upload;
  }

  /** The part stored under `partNumber` if it holds exactly these bytes (or this copied chunk). */
  reusable(
    partNumber: number,
    part: { size: number; md5?: string; copyOf?: string },
  ): PartRecord | undefined {
    const p = this.#stored.get(partNumber);
    if (!p || p.size !== part.size) return undefined;
    if (part.copyOf !== undefined) return p.copyOf === part.copyOf ? p : undefined;
    return p.copyOf === undefined && p.md5 === part.md5 ? p : undefined;
  }

  /** UploadPart of `body` as part `partNumber`, recorded in the journal once S3 has it. */
  async sendPart(partNumber: number, body: Buffer, signal: AbortSignal | undefined) {
    const { ctx } = this;
    const md5 = createHash('md5').update(body).digest();
    const res = await ctx.client.send(
      new ctx.sdk.UploadPartCommand({
        Bucket: ctx.bucket,
        Key: this.key,
        UploadId: this.uploadId,
        PartNumber: partNumber,
        Body: body,
        ContentLength: body.length,
        ContentMD5: md5.toString('base64'),
        ...(ctx.checksumAlgorithm ? { ChecksumAlgorithm: ctx.checksumAlgorithm } : {}),
      }),
      { abortSignal: signal },
    );
    return this.record(partRecord(ctx, partNumber, res, md5.toString('hex'), body.length));
  }

  /** UploadPartCopy of a whole chunk; undefined when the server does not implement it. */
  async copyPart(partNumber: number, chunk: ChunkObject, signal: AbortSignal | undefined) {
    const { ctx } = this;
    try {
      const res = await ctx.client.send(
        new ctx.sdk.UploadPartCopyCommand({
          Bucket: ctx.bucket,
          Key: this.key,
          UploadId: this.uploadId,
          PartNumber: partNumber,
          CopySource: copySource(ctx.bucket, chunk.key),
          // The chunk must still be the one listed: a flush retried after a timeout may have
          // replaced it with a longer one.
          CopySourceIfMatch: `"${chunk.etag}"`,
        }),
        { abortSignal: signal },
      );
      const record = partRecord(ctx, partNumber, res.CopyPartResult ?? {}, chunk.etag, chunk.size);
      return await this.record({ ...record, copyOf: `${chunk.key}@${chunk.etag}` });
    } catch (err) {
      if (!isNotImplemented(err)) throw err;
      ctx.partCopy = false;
      return undefined;
    }
  }

  async record(part: PartRecord): Promise<PartRecord> {
    this.#stored.set(part.PartNumber, part);
    await this.#save();
    return part;
  }

  /**
   * CompleteMultipartUpload of `parts` (numbered 1..n, in order). Parts an earlier process stored
   * under higher numbers are left out, and S3 discards them. An upload S3 no longer knows, or a
   * part it does not hold, is dropped from the journal, so the next run starts over.
   */
  async complete(parts: readonly PartRecord[], signal: AbortSignal | undefined) {
    const { ctx } = this;
    try {
      const done = await ctx.client.send(
        new ctx.sdk.CompleteMultipartUploadCommand({
          Bucket: ctx.bucket,
          Key: this.key,
          UploadId: this.uploadId,
          MultipartUpload: {
            Parts: parts.map(
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
      return done.ETag;
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'NoSuchUpload' || name === 'InvalidPart') await this.forget();
      throw err;
    }
  }

  /** Aborts the upload (best effort: s3rver 3.7 cannot) and empties the journal. */
  async abandon(): Promise<void> {
    await abortUpload(this.ctx, this.key, this.uploadId, undefined);
    await this.forget();
  }

  /** Empties the journal: the upload is complete (or gone). */
  async forget(): Promise<void> {
    await this.#saving;
    await this.journal?.save(null);
  }

  /** Saves are chained, so concurrent parts never write an older state over a newer one. */
  #save(): Promise<void> {
    const state: MultipartState = {
      v: 2,
      key: this.key,
      uploadId: this.uploadId,
      ...this.log,
      parts: [...this.#stored.values()].sort((a, b) => a.PartNumber - b.PartNumber),
    };
    const next = this.#saving.then(() => this.journal?.save(state));
    this.#saving = next.catch(() => undefined);
    return next;
  }
}

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
    const body = buffer!.subarray(0, filled);
    const n = parts.length + 1;
    const md5 = createHash('md5').update(body).digest('hex');
    parts.push(
      upload.reusable(n, { size: body.length, md5 }) ?? (await upload.sendPart(n, body, signal)),
    );
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

function partRecord(
  ctx: S3Context,
  partNumber: number,
  res: { ETag?: string | undefined },
  md5: string,
  size: number,
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
    size,
    ...(typeof checksum === 'string' ? { checksum } : {}),
  };
}

/**
 * Stores a log of at most one part with one PutObject, `tasklog-sha256` included: `body` is
 * checked against `expected` here first (its uncompressed form, for gzip: `expected` is always
 * about the log), and S3 stores the object only if the bytes it received match the Content-MD5,
 * so the object never exists with other bytes than the ones checked. PutObject replaces an
 * object atomically. An upload the journal still names is aborted first (best effort).
 */
async function putVerified(
  ctx: S3Context,
  key: string,
  body: Buffer,
  expected: { size: number; sha256: string },
  gzip: { size: number; sha256: string } | undefined,
  options: { journal?: UploadJournal; signal?: AbortSignal },
): Promise<void> {
  const { journal, signal } = options;
  const log = gzip ?? {
    size: body.length,
    sha256: createHash('sha256').update(body).digest('hex'),
  };
  if (log.size !== expected.size || log.sha256 !== expected.sha256) {
    throw new IntegrityError(
      `the log for s3://${ctx.bucket}/${key} has ${log.size} bytes with sha256 ${log.sha256}, expected ${expected.size} bytes with sha256 ${expected.sha256}; nothing stored`,
    );
  }
  const saved = parseState(await journal?.load());
  if (saved) {
    await abortUpload(ctx, saved.key!, saved.uploadId!, signal);
    await journal?.save(null);
  }
  const md5 = createHash('md5').update(body).digest();
  const params = finalParams(ctx, expected.size, gzip ? 'gzip' : undefined);
  const res = await ctx.client.send(
    new ctx.sdk.PutObjectCommand({
      Bucket: ctx.bucket,
      Key: key,
      Body: body,
      ContentLength: body.length,
      ContentMD5: md5.toString('base64'),
      ...params,
      Metadata: { ...params.Metadata, [META_SHA256]: expected.sha256 },
    }),
    { abortSignal: signal },
  );
  // S3 already refused other bytes; an S3-compatible store that ignores Content-MD5 (s3rver)
  // still answers their MD5 as the ETag.
  const etag = unquote(res.ETag ?? '');
  if (ctx.sse !== 'aws:kms' && /^[0-9a-f]{32}$/.test(etag) && etag !== md5.toString('hex')) {
    await deleteObject(ctx, key);
    throw new IntegrityError(
      `s3://${ctx.bucket}/${key} was stored with ETag ${etag}, but its MD5 is ${md5.toString('hex')}; object removed`,
    );
  }
}

/**
 * Checks a completed multipart object before anyone trusts it, then adds `tasklog-sha256`; deletes
 * it and throws IntegrityError when it is not what was meant.
 */
async function verifyAndStamp(
  ctx: S3Context,
  key: string,
  facts: {
    etag: string | undefined;
    parts: readonly PartRecord[];
    /** Hex MD5 of the whole object, when every stored byte passed through this process in order. */
    wholeMd5: string | undefined;
    /** Bytes the object must hold (compressed ones for gzip). */
    storedSize: number;
    /** The log's uncompressed size and sha256. */
    expected: { size: number; sha256: string };
    /** The sha256 of the parts' bytes is already known to equal `expected.sha256`. */
    sha256Verified: boolean;
    gzip: boolean;
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
    { abortSignal: signal },
  );
  if (head.ContentLength !== facts.storedSize) {
    problems.push(`it holds ${head.ContentLength} bytes, expected ${facts.storedSize}`);
  }
  if (problems.length === 0 && (!facts.sha256Verified || etag === 'unknown')) {
    // Nothing proves the stored bytes yet (parts copied server-side from chunks this process
    // did not write, SSE-KMS ETags, or a store whose ETag is neither form): read them back once.
    const back = await readBackDigest(ctx, key, facts.gzip, signal);
    if (back.size !== expected.size || back.sha256 !== expected.sha256) {
      problems.push(`it reads back as ${back.size} bytes with sha256 ${back.sha256}`);
    }
  }
  if (problems.length > 0) {
    await deleteObject(ctx, key);
    throw new IntegrityError(
      `${where} was assembled wrong and removed: ${problems.join('; ')} (expected ${expected.size} bytes with sha256 ${expected.sha256})`,
    );
  }
  await stampVerified(ctx, key, head, expected, signal);
}

/**
 * Adds `tasklog-sha256` to an object that was just checked: CopyObject onto itself with
 * MetadataDirective REPLACE, which is how S3 changes an object's metadata. A REPLACE copy takes
 * only what the request names, so the request repeats what the object has: content type and
 * encoding, caching headers, storage class (absent means STANDARD), SSE settings and the extra
 * checksum. `CopySourceIfMatch` pins the copy to the object that was checked (412 if it was
 * replaced since). S3 keeps the bytes; the object gets a new ETag and LastModified.
 *
 * Skipped (the object stays without sha256, and readers that want it read the log back) for
 * objects over CopyObject's 5 GB and where the server cannot copy this object onto itself.
 */
async function stampVerified(
  ctx: S3Context,
  key: string,
  head: HeadObjectCommandOutput,
  expected: { size: number; sha256: string },
  signal: AbortSignal | undefined,
): Promise<void> {
  if ((head.ContentLength ?? 0) > MAX_COPY_SIZE) return;
  try {
    await ctx.client.send(
      new ctx.sdk.CopyObjectCommand({
        Bucket: ctx.bucket,
        Key: key,
        CopySource: copySource(ctx.bucket, key),
        CopySourceIfMatch: head.ETag,
        MetadataDirective: 'REPLACE',
        Metadata: {
          ...head.Metadata,
          [META_SIZE]: String(expected.size),
          [META_SHA256]: expected.sha256,
        },
        ContentType: head.ContentType,
        ContentEncoding: head.ContentEncoding,
        ContentDisposition: head.ContentDisposition,
        ContentLanguage: head.ContentLanguage,
        CacheControl: head.CacheControl,
        StorageClass: head.StorageClass,
        ServerSideEncryption: head.ServerSideEncryption,
        SSEKMSKeyId: head.SSEKMSKeyId,
        BucketKeyEnabled: head.BucketKeyEnabled,
        ChecksumAlgorithm: ctx.checksumAlgorithm,
      }),
      { abortSignal: signal },
    );
  } catch (err) {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'PreconditionFailed' || e.$metadata?.httpStatusCode === 412) {
      // Our own copy may have landed on a try whose answer was lost (the copy has a new ETag).
      const now = await ctx.client.send(
        new ctx.sdk.HeadObjectCommand({ Bucket: ctx.bucket, Key: key }),
        { abortSignal: signal },
      );
      if (
        now.Metadata?.[META_SHA256] === expected.sha256 &&
        now.ContentLength === head.ContentLength
      ) {
        return;
      }
      throw new ConflictError(
        `s3://${ctx.bucket}/${key} was replaced while it was being verified`,
        { cause: err },
      );
    }
    // An archive storage class (InvalidObjectState) or a server without self-copies.
    if (isNotImplemented(err) || e.name === 'InvalidObjectState') return;
    throw err;
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
    return etag === compositeEtag(parts.map((p) => p.md5)) ? 'ok' : 'mismatch';
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

/** Size and sha256 of an object's bytes (inflated, for gzip), streamed. */
export async function readBackDigest(
  ctx: S3Context,
  key: string,
  gzip: boolean,
  signal: AbortSignal | undefined,
): Promise<{ size: number; sha256: string }> {
  const res = await ctx.client.send(
    new ctx.sdk.GetObjectCommand({ Bucket: ctx.bucket, Key: key }),
    { abortSignal: signal },
  );
  const hash = createHash('sha256');
  let size = 0;
  const consume = async (source: AsyncIterable<Buffer>) => {
    for await (const piece of source) {
      hash.update(piece);
      size += piece.length;
    }
  };
  const body = res.Body as Readable;
  if (gzip) await pipeline(body, createGunzip(), consume, { signal });
  else await pipeline(body, consume, { signal });
  return { size, sha256: hash.digest('hex') };
}

/** How an AbortMultipartUpload ended; `unsupported` when the server lacks the call (s3rver 3.7). */
export type AbortOutcome = 'aborted' | 'gone' | 'unsupported';

/**
 * AbortMultipartUpload. An upload S3 no longer knows (completed, aborted, expired) is `gone`; a
 * server without the call answers `unsupported` (s3rver 3.7 says MethodNotAllowed), and its upload
 * stays until a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes it.
 */
export async function abortUpload(
  ctx: S3Context,
  key: string,
  uploadId: string,
  signal: AbortSignal | undefined,
  onError: 'throw' | 'ignore' = 'ignore',
): Promise<AbortOutcome> {
  try {
    await ctx.client.send(
      new ctx.sdk.AbortMultipartUploadCommand({ Bucket: ctx.bucket, Key: key, UploadId: uploadId }),
      { abortSignal: signal },
    );
    return 'aborted';
  } catch (err) {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'NoSuchUpload' || e.$metadata?.httpStatusCode === 404) return 'gone';
    if (isNotImplemented(err)) return 'unsupported';
    if (onError === 'throw') throw err;
    return 'gone';
  }
}

/**
 * The upload a journal names (key and id), if it holds multipart state; used to abort what a
 * killed writer or upload left once the log is complete.
 */
export async function journaledUpload(
  journal: UploadJournal | undefined,
): Promise<{ key: string; uploadId: string } | undefined> {
  const saved = parseState(await journal?.load());
  return saved ? { key: saved.key!, uploadId: saved.uploadId! } : undefined;
}

/**
 * Every multipart upload in progress for exactly `key` (ListMultipartUploads with the key as
 * prefix, then only that key), page by page; `unsupported` when the server lacks the call
 * (s3rver 3.7 answers NotImplemented).
 */
export async function listUploads(
  ctx: S3Context,
  key: string,
  signal: AbortSignal | undefined,
): Promise<string[] | 'unsupported'> {
  const ids: string[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  try {
    do {
      throwIfAborted(signal);
      const page = await ctx.client.send(
        new ctx.sdk.ListMultipartUploadsCommand({
          Bucket: ctx.bucket,
          Prefix: key,
          ...(keyMarker ? { KeyMarker: keyMarker } : {}),
          ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
        }),
        { abortSignal: signal },
      );
      for (const u of page.Uploads ?? []) if (u.Key === key && u.UploadId) ids.push(u.UploadId);
      const more = page.IsTruncated === true && (page.NextKeyMarker || page.NextUploadIdMarker);
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker || uploadIdMarker);
  } catch (err) {
    if (isNotImplemented(err)) return 'unsupported';
    throw err;
  }
  return ids;
}

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
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e.name === 'NoSuchUpload' || e.$metadata?.httpStatusCode === 404) return 'gone';
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
    const body = buffer.subarray(0, filled);
    const n = parts.length + 1;
    const md5 = createHash('md5').update(body).digest('hex');
    parts.push(
      upload.reusable(n, { size: body.length, md5 }) ?? (await upload.sendPart(n, body, signal)),
    );
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

/** `bucket/key` for x-amz-copy-source: each key segment URL-encoded, as S3 requires. */
function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

async function deleteObject(ctx: S3Context, key: string): Promise<void> {
  await ctx.client
    .send(new ctx.sdk.DeleteObjectCommand({ Bucket: ctx.bucket, Key: key }))
    .catch(() => undefined);
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
