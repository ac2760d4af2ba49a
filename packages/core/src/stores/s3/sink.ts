import { createHash } from 'node:crypto';
import { ConflictError, IntegrityError, type TasklogError } from '../../errors.js';
import type { UploadJournal } from '../../store.js';
import { chunkName, contiguousRun } from '../shared/chunk-layout.js';
import type { ChunkSink, ExpectedLog, WrittenLog } from '../shared/chunked-writer.js';
import { assembleFromChunks, chunkBytes } from './assemble.js';
import { type S3Context, writeParams } from './client.js';
import { s3Error } from './errors.js';
import { headFinal } from './final-object.js';
import { uploadGzip } from './gzip-upload.js';
import { deleteKeys, type Location, listChunks } from './layout.js';

/**
 * The S3 store's half of a writer: each chunk is one PutObject, and finish() joins the chunks
 * with a journaled multipart upload (or one gzip upload) into the finished object.
 */
export class S3ChunkSink implements ChunkSink {
  readonly where: string;
  /** The chunk keys finish() listed: what removeChunks() deletes once the log is complete. */
  #listed: string[] = [];

  constructor(
    private readonly ctx: S3Context,
    private readonly loc: Location,
    private readonly compression: 'none' | 'gzip',
    private readonly journal: UploadJournal | undefined,
  ) {
    this.where = `s3://${ctx.bucket}/${loc.final}`;
  }

  async putChunk(offset: number, bytes: Buffer): Promise<void> {
    const { ctx, loc } = this;
    await ctx.client.send(
      new ctx.sdk.PutObjectCommand({
        Bucket: ctx.bucket,
        Key: `${loc.chunks}${chunkName(offset)}`,
        Body: bytes,
        ContentLength: bytes.length,
        // S3 rejects the chunk if its bytes do not hash to this (s3rver does not check it).
        ContentMD5: createHash('md5').update(bytes).digest('base64'),
        ...writeParams(ctx),
      }),
    );
  }

  /**
   * Checks the log against what this writer saw and what the chunks hold, then builds the
   * finished object (see `assembleFromChunks`, `uploadGzip`). IntegrityError keeps the chunks.
   */
  async finish(want: ExpectedLog, own: WrittenLog): Promise<void> {
    const { ctx, loc } = this;
    if (own.sha256 !== undefined && (own.committed !== want.size || own.sha256 !== want.sha256)) {
      throw new IntegrityError(
        `log ${this.where} has ${own.committed} bytes with sha256 ${own.sha256}, expected ${want.size} bytes with sha256 ${want.sha256}; chunks kept`,
      );
    }
    if (await headFinal(ctx, loc.final, undefined)) {
      throw new ConflictError(`log ${this.where} is already complete`);
    }
    const listed = await listChunks(ctx, loc, undefined);
    const run = contiguousRun(listed);
    if (run.committed !== want.size) {
      throw new IntegrityError(
        `log ${this.where} has ${run.committed} bytes in its chunks, expected ${want.size}; chunks kept`,
      );
    }
    const { journal } = this;
    if (this.compression === 'gzip') {
      await uploadGzip(ctx, loc.final, chunkBytes(ctx, run.chunks, undefined), want, { journal });
    } else {
      const sha256Known = own.sha256 !== undefined;
      await assembleFromChunks(ctx, loc.final, run.chunks, want, sha256Known, { journal });
    }
    this.#listed = listed.map((c) => c.key);
  }

  removeChunks(): Promise<void> {
    return deleteKeys(this.ctx, this.#listed, undefined);
  }

  mapError(err: unknown, action: 'flush' | 'finish'): TasklogError {
    return s3Error(err, this.ctx.bucket, this.loc.final, action);
  }
}
