import type { HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import { ConflictError } from '../../errors.js';
import type { LogStat } from '../../store.js';
import { type S3Context, writeParams } from './client.js';
import { isMissingKey, isNotImplemented, isPreconditionFailed } from './errors.js';
import { copySource } from './layout.js';
import { MAX_COPY_SIZE } from './limits.js';

// The object of a finished log: the settings it is created with, what a HeadObject of it says,
// and the conditional self-copy that adds `tasklog-sha256` once it was checked.

const TEXT_CONTENT_TYPE = 'text/plain; charset=utf-8';
export const META_SIZE = 'tasklog-size';
export const META_SHA256 = 'tasklog-sha256';

/** A finished log, as its HeadObject describes it. */
export interface FinalObject {
  /** Size of the log (uncompressed). */
  size: number;
  gzip: boolean;
  sha256?: string;
  modifiedAt?: Date;
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

/** HeadObject of the finished log; undefined when there is none. */
export async function headFinal(
  ctx: S3Context,
  key: string,
  signal: AbortSignal | undefined,
): Promise<FinalObject | undefined> {
  let head: HeadObjectCommandOutput;
  try {
    head = await ctx.client.send(new ctx.sdk.HeadObjectCommand({ Bucket: ctx.bucket, Key: key }), {
      abortSignal: signal,
    });
  } catch (err) {
    if (isMissingKey(err)) return undefined;
    throw err;
  }
  const stored = head.ContentLength ?? 0;
  const meta = head.Metadata ?? {};
  const declared = meta[META_SIZE] === undefined ? Number.NaN : Number(meta[META_SIZE]);
  const sha256 = meta[META_SHA256];
  return {
    // An object without tasklog's metadata (Airflow wrote it) is a complete log of its bytes.
    size: Number.isSafeInteger(declared) && declared >= 0 ? declared : stored,
    gzip: /\bgzip\b/i.test(head.ContentEncoding ?? ''),
    ...(sha256 && /^[0-9a-f]{64}$/.test(sha256) ? { sha256 } : {}),
    ...(head.LastModified ? { modifiedAt: head.LastModified } : {}),
  };
}

export function finalStat(final: FinalObject): LogStat {
  return {
    size: final.size,
    complete: true,
    ...(final.sha256 ? { sha256: final.sha256 } : {}),
    ...(final.modifiedAt ? { modifiedAt: final.modifiedAt } : {}),
  };
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
export async function stampVerified(
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
    if (isPreconditionFailed(err)) {
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
    if (isNotImplemented(err) || (err as { name?: string }).name === 'InvalidObjectState') return;
    throw err;
  }
}
