import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import { BackendUnavailableError } from '../../errors.js';
import type { AttemptFilter, PathTemplate } from '../../path-template.js';
import {
  legacyRunningPrefix,
  logNameOf,
  matchesFilter,
  parseChunkName,
  runningPrefix,
} from '../shared/chunk-layout.js';
import { throwIfAborted } from '../shared/store-checks.js';
import type { S3Context } from './client.js';
import { DELETE_BATCH } from './limits.js';

// Where an attempt's objects live in the bucket, and how they are listed and deleted.

export interface Location {
  /** Relative path of the log, as the template renders it. */
  rel: string;
  /** Key of the finished log. */
  final: string;
  /** Key prefix of the running attempt's chunks, ending in `/` (see `runningPrefix`). */
  chunks: string;
  /** Where archives written before `runningPrefix` keep chunks: read, resumed and removed, never written. */
  legacyChunks: string;
}

export function locate(prefix: string, pathTemplate: PathTemplate, key: AttemptKey): Location {
  const rel = pathTemplate.render(attemptKey(key));
  const final = prefix ? `${prefix}/${rel}` : rel;
  return { rel, final, chunks: runningPrefix(final), legacyChunks: legacyRunningPrefix(final) };
}

/** A chunk object of a running attempt, as listed. */
export interface ChunkObject {
  key: string;
  offset: number;
  size: number;
  /** Unquoted ETag from the listing: the MD5 of the chunk (a single PutObject), unless SSE-KMS. */
  etag: string;
}

/** Every object below `prefix`, page by page. */
export async function* listObjects(
  ctx: S3Context,
  prefix: string,
  signal: AbortSignal | undefined,
): AsyncGenerator<{ key: string; size: number; etag: string; modifiedAt?: Date }> {
  let token: string | undefined;
  do {
    throwIfAborted(signal);
    const page = await ctx.client.send(
      new ctx.sdk.ListObjectsV2Command({
        Bucket: ctx.bucket,
        Prefix: prefix,
        MaxKeys: ctx.listPageSize,
        ...(token ? { ContinuationToken: token } : {}),
      }),
      { abortSignal: signal },
    );
    for (const o of page.Contents ?? []) {
      if (o.Key === undefined) continue;
      yield {
        key: o.Key,
        size: o.Size ?? 0,
        etag: unquote(o.ETag ?? ''),
        ...(o.LastModified ? { modifiedAt: o.LastModified } : {}),
      };
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/**
 * Every chunk object of a running attempt (not only the contiguous run), in its place and in the
 * place older archives kept it: a writer resumed on an old archive continues in the new place, so
 * one attempt may have chunks in both.
 */
export async function listChunks(
  ctx: S3Context,
  loc: Location,
  signal: AbortSignal | undefined,
): Promise<(ChunkObject & { modifiedAt?: Date })[]> {
  const out: (ChunkObject & { modifiedAt?: Date })[] = [];
  for (const prefix of [loc.chunks, loc.legacyChunks]) {
    for await (const o of listObjects(ctx, prefix, signal)) {
      const offset = parseChunkName(o.key.slice(prefix.length));
      if (offset !== undefined) out.push({ ...o, offset });
    }
  }
  return out;
}

/**
 * Every finished or running attempt below `listPrefix` (which starts with `base`, the store's
 * prefix and its `/`) that matches `wanted`, each once.
 */
export async function* listAttempts(
  ctx: S3Context,
  base: string,
  listPrefix: string,
  pathTemplate: PathTemplate,
  wanted: AttemptFilter,
  signal: AbortSignal | undefined,
): AsyncGenerator<AttemptKey> {
  // A finished log and its leftover chunks share a folder and are listed next to each
  // other, so remembering the attempts of the current folder is enough to yield each once,
  // with memory bounded by the widest folder rather than the bucket.
  let folder: string | undefined;
  let seen = new Set<string>();
  for await (const object of listObjects(ctx, listPrefix, signal)) {
    const rel = attemptRel(object.key.slice(base.length));
    if (rel === undefined) continue;
    const key = keyAt(pathTemplate, rel);
    if (!key || !matchesFilter(key, wanted)) continue;
    const dir = rel.slice(0, rel.lastIndexOf('/') + 1);
    if (dir !== folder) {
      folder = dir;
      seen = new Set();
    }
    if (seen.has(rel)) continue;
    seen.add(rel);
    yield key;
  }
}

/** The relative path of the attempt a key (below the prefix) belongs to, if any. */
function attemptRel(relKey: string): string | undefined {
  const rel = logNameOf(relKey);
  if (rel !== relKey && parseChunkName(relKey.slice(relKey.lastIndexOf('/') + 1)) === undefined) {
    return undefined;
  }
  return rel;
}

/** The attempt whose canonical path is exactly `rel`, if any. */
function keyAt(pathTemplate: PathTemplate, rel: string): AttemptKey | undefined {
  const key = pathTemplate.tryParse(rel);
  if (!key) return undefined;
  try {
    return pathTemplate.render(key) === rel ? key : undefined;
  } catch {
    return undefined;
  }
}

/** DeleteObjects in batches of S3's limit; a missing key is not an error. */
export async function deleteKeys(
  ctx: S3Context,
  keys: readonly string[],
  signal: AbortSignal | undefined,
): Promise<void> {
  for (let i = 0; i < keys.length; i += DELETE_BATCH) {
    const batch = keys.slice(i, i + DELETE_BATCH);
    const res = await ctx.client.send(
      new ctx.sdk.DeleteObjectsCommand({
        Bucket: ctx.bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      }),
      { abortSignal: signal },
    );
    const failed = res.Errors ?? [];
    if (failed.length > 0) {
      const first = failed[0]!;
      throw new BackendUnavailableError(
        `cannot delete ${failed.length} object(s) in bucket ${ctx.bucket}, e.g. ${first.Key}: ${first.Code} ${first.Message ?? ''}`.trim(),
      );
    }
  }
}

/** `bucket/key` for x-amz-copy-source: each key segment URL-encoded, as S3 requires. */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

export function unquote(etag: string): string {
  return etag.replace(/"/g, '').toLowerCase();
}
