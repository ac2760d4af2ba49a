import { createHash } from 'node:crypto';
import type { CompletedPart } from '@aws-sdk/client-s3';
import { IntegrityError } from '../../errors.js';
import type { UploadJournal } from '../../store.js';
import type { S3Context } from './client.js';
import { isNotImplemented, isUploadGone } from './errors.js';
import type { finalParams } from './final-object.js';
import { type ChunkObject, copySource, unquote } from './layout.js';
import {
  abortUpload,
  type MultipartState,
  type PartRecord,
  parseState,
} from './multipart-journal.js';

// One multipart upload that outlives its process: each part is recorded in the caller's journal
// (see multipart-journal.ts) once S3 acknowledged it with our Content-MD5, so the next process
// resumes the upload instead of sending every part again.

/** One multipart upload, journaled, possibly resumed from an earlier process's journal. */
export class MultipartUpload {
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

  /**
   * Part `partNumber` holding `body`: the one an earlier process stored when it holds exactly
   * these bytes, else sent now (see `sendPart`).
   */
  async storePart(partNumber: number, body: Buffer, signal: AbortSignal | undefined) {
    const md5 = createHash('md5').update(body).digest('hex');
    return (
      this.reusable(partNumber, { size: body.length, md5 }) ??
      (await this.sendPart(partNumber, body, signal))
    );
  }

  /**
   * UploadPart of `body` as part `partNumber` (`md5`: its binary MD5, when the caller has it),
   * recorded in the journal once S3 has it.
   */
  async sendPart(
    partNumber: number,
    body: Buffer,
    signal: AbortSignal | undefined,
    md5 = createHash('md5').update(body).digest(),
  ) {
    const { ctx } = this;
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
    if (isUploadGone(err)) return 'gone';
    if (isNotImplemented(err)) return 'unsupported';
    throw err;
  }
  return out;
}
