import type { UploadJournal } from '../../store.js';
import { throwIfAborted } from '../shared/store-checks.js';
import type { S3Context } from './client.js';
import { isNotImplemented, isUploadGone } from './errors.js';

// What a multipart upload keeps in the caller's journal, and how an upload left open is found
// again and aborted. A crashed process's journal is read by the next version of tasklog: the JSON
// shape below (`v: 2`) is a format, not an implementation detail.

/** One stored part, as the journal records it. */
export interface PartRecord {
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
export interface MultipartState {
  v: 2;
  key: string;
  uploadId: string;
  /** The log being stored, and how it is cut into parts: only the same one can reuse the parts. */
  size: number;
  sha256: string;
  layout: string;
  parts: PartRecord[];
}

export function parseState(raw: unknown): Partial<MultipartState> | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const s = raw as Partial<MultipartState>;
  return typeof s.key === 'string' && typeof s.uploadId === 'string' ? s : undefined;
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

/** Aborts the multipart upload of `key` the journal names, if any, and empties the journal. */
export async function abortJournaled(
  ctx: S3Context,
  key: string,
  journal: UploadJournal | undefined,
  signal: AbortSignal | undefined,
): Promise<{ uploadId: string; outcome: AbortOutcome } | undefined> {
  const journaled = await journaledUpload(journal);
  if (journaled?.key !== key) return undefined;
  const outcome = await abortUpload(ctx, journaled.key, journaled.uploadId, signal, 'throw');
  await journal?.save(null);
  return { uploadId: journaled.uploadId, outcome };
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
    if (isUploadGone(err)) return 'gone';
    if (isNotImplemented(err)) return 'unsupported';
    if (onError === 'throw') throw err;
    return 'gone';
  }
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
