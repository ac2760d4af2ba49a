import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { IntegrityError } from '../../errors.js';
import type { UploadJournal } from '../../store.js';
import type { S3Context } from './client.js';
import { finalParams, META_SHA256, stampVerified } from './final-object.js';
import { unquote } from './layout.js';
import { abortUpload, type PartRecord, parseState } from './multipart-journal.js';

// How a finished log's object is checked before anyone trusts it: a one-part log is checked before
// it is sent and stored by a PutObject S3 checks against its Content-MD5; a multipart object is
// checked after CompleteMultipartUpload (ETag, size, or its bytes read back), and only then gets
// `tasklog-sha256`. An object that fails is deleted.

/**
 * Stores a log of at most one part with one PutObject, `tasklog-sha256` included: `body` is
 * checked against `expected` here first (its uncompressed form, for gzip: `expected` is always
 * about the log), and S3 stores the object only if the bytes it received match the Content-MD5,
 * so the object never exists with other bytes than the ones checked. PutObject replaces an
 * object atomically. An upload the journal still names is aborted first (best effort).
 */
export async function putVerified(
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
export async function verifyAndStamp(
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

/** Removes an object that was stored wrong; best effort, the IntegrityError that follows says why. */
async function deleteObject(ctx: S3Context, key: string): Promise<void> {
  await ctx.client
    .send(new ctx.sdk.DeleteObjectCommand({ Bucket: ctx.bucket, Key: key }))
    .catch(() => undefined);
}
