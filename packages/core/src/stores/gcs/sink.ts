import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { ConflictError, IntegrityError, NotFoundError } from '../../errors.js';
import type { UploadJournal } from '../../store.js';
import { chunkName } from '../shared/chunk-layout.js';
import type { ChunkSink, ExpectedLog, WrittenLog } from '../shared/chunked-writer.js';
import type { Backend } from './client.js';
import { composeObjects } from './compose.js';
import { combinedCrc32c } from './crc32c.js';
import { PreconditionFailed, statusOf } from './errors.js';
import { LOG_CONTENT_TYPE, META_SIZE, stampVerified } from './final-object.js';
import { type ChunkListing, type Location, listChunks, listRunning } from './layout.js';
import { readChunk, readFinal } from './reads.js';
import { uploadResumable } from './upload.js';

/**
 * The GCS store's half of a writer: each chunk is an object created with `ifGenerationMatch: 0`
 * (see `Backend.createIfMissing`), and finish() composes the chunks into the final object, or
 * streams them into one gzip upload. The Backend maps the SDK's errors, so there is no mapError.
 */
export class GcsChunkSink implements ChunkSink {
  readonly where: string;

  constructor(
    private readonly be: Backend,
    private readonly loc: Location,
    private readonly journal: UploadJournal | undefined,
  ) {
    this.where = be.describe(loc.final);
  }

  putChunk(offset: number, bytes: Buffer): Promise<void> {
    return this.be.createIfMissing(this.loc.chunkPrefix + chunkName(offset), bytes);
  }

  /**
   * Checks that the log is not complete yet and that the chunks hold `want` (the sha256 too, when
   * this writer saw every byte), then makes the final object. IntegrityError keeps the chunks.
   */
  async finish(want: ExpectedLog, own: WrittenLog): Promise<void> {
    const { be, loc } = this;
    if (await be.metadata(loc.final)) {
      throw new ConflictError(`log ${this.where} is already complete`);
    }
    const listing = await listChunks(be, loc);
    if (listing.committed !== want.size) {
      throw new IntegrityError(
        `log ${this.where} holds ${listing.committed} bytes in chunks, expected ${want.size}; chunks kept`,
      );
    }
    if (own.sha256 !== undefined && own.sha256 !== want.sha256) {
      throw this.#shaMismatch(own.sha256, want.sha256);
    }
    if (be.options.compression === 'gzip') await this.#uploadGzip(listing, want);
    else await this.#compose(listing, want, own.sha256 !== undefined);
  }

  async removeChunks(): Promise<void> {
    await this.be.deleteAll(await listRunning(this.be, this.loc));
  }

  /**
   * Composes the chunks into the final object, checks it (size and crc32c against the chunks',
   * sha256 by reading it back when this writer did not see every byte), and only then sets
   * `tasklog-sha256`. Intermediate objects live under the chunk prefix and go with the chunks.
   */
  async #compose(listing: ChunkListing, want: ExpectedLog, sawAll: boolean): Promise<void> {
    const { be, loc } = this;
    if (want.size === 0) {
      await be.bucket
        .file(loc.final)
        .save(Buffer.alloc(0), {
          resumable: false,
          preconditionOpts: { ifGenerationMatch: 0 },
          metadata: { contentType: LOG_CONTENT_TYPE, metadata: { [META_SIZE]: '0' } },
        })
        .catch((err: unknown) => {
          if (statusOf(err) === 412) {
            throw new ConflictError(`log ${this.where} is already complete`, { cause: err });
          }
          throw be.error(err, 'write', loc.final);
        });
      const empty = await be.metadata(loc.final);
      if (!empty) throw new NotFoundError(`${this.where} vanished right after its write`);
      if (Number(empty.size) !== 0) {
        throw new ConflictError(`log ${this.where} was written by someone else`);
      }
      await stampVerified(be, loc.final, empty, want);
      return;
    }
    const expectedCrc = combinedCrc32c(listing.chunks);
    try {
      await composeObjects(
        be,
        listing.chunks.map((c) => c.file),
        loc.final,
        loc.chunkPrefix,
      );
    } catch (err) {
      if (!(err instanceof PreconditionFailed)) throw err;
      // Our own compose may have succeeded on a try whose answer was lost: same size and
      // crc32c as our chunks means it is ours; anything else was written by someone else.
      const existing = await be.metadata(loc.final);
      if (
        !existing ||
        Number(existing.size) !== want.size ||
        (expectedCrc !== undefined && existing.crc32c !== expectedCrc)
      ) {
        throw new ConflictError(`log ${this.where} is already complete`, { cause: err });
      }
    }
    const meta = await be.metadata(loc.final);
    if (!meta) throw new NotFoundError(`${this.where} vanished right after compose`);
    if (
      Number(meta.size) !== want.size ||
      (expectedCrc !== undefined && meta.crc32c !== expectedCrc)
    ) {
      await be.deleteObject(loc.final, meta.generation);
      throw new IntegrityError(
        `composed ${this.where} holds ${meta.size} bytes with crc32c ${meta.crc32c}, ` +
          `its chunks ${want.size} bytes with crc32c ${expectedCrc}; object removed, chunks kept`,
      );
    }
    if (!sawAll) {
      // A resumed writer never saw the first bytes: hash the composed object once, streamed.
      const hash = createHash('sha256');
      for await (const piece of readFinal(be, loc.final, meta, 0, undefined))
        hash.update(piece.bytes);
      const sha256 = hash.digest('hex');
      if (sha256 !== want.sha256) {
        await be.deleteObject(loc.final, meta.generation);
        throw this.#shaMismatch(sha256, want.sha256);
      }
    }
    await stampVerified(be, loc.final, meta, want);
  }

  /**
   * Streams the chunks through sha256 and gzip into one resumable upload, journaled, so the next
   * writer resumes one killed while finishing (see `uploadResumable`). The sha256 check
   * runs before the upload's last request goes out, so a mismatching log never becomes an object.
   */
  async #uploadGzip(listing: ChunkListing, want: ExpectedLog): Promise<void> {
    const { be, loc } = this;
    const chunks = listing.chunks;
    async function* source(): AsyncGenerator<Uint8Array> {
      for (const chunk of chunks) {
        for await (const piece of readChunk(be, chunk, chunk.offset, chunk.offset + chunk.size)) {
          yield piece.bytes;
        }
      }
    }
    await uploadResumable(be, loc.final, () => Readable.from(source()), want, {
      label: this.where,
      journal: this.journal,
      replace: false,
    });
  }

  #shaMismatch(actual: string, expected: string): IntegrityError {
    return new IntegrityError(
      `log ${this.where} has sha256 ${actual}, expected ${expected}; chunks kept`,
    );
  }
}
