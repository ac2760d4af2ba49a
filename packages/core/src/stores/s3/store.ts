import { createHash } from 'node:crypto';
import type { AttemptKey } from '../../attempt-key.js';
import { ConflictError, InvalidInputError } from '../../errors.js';
import type { AttemptFilter } from '../../path-template.js';
import type * as contract from '../../store.js';
import type { OpenStoreOptions } from '../registry.js';
import { chunkName, contiguousRun } from '../shared/chunk-layout.js';
import { ChunkedWriter } from '../shared/chunked-writer.js';
import { operation, streamOperation } from '../shared/operation.js';
import {
  checkReadRange,
  readLocalFile,
  validateExpected,
  validateFilter,
} from '../shared/store-checks.js';
import { createS3Context, type S3Context, writeParams } from './client.js';
import { s3Error } from './errors.js';
import { uploadFile } from './file-upload.js';
import { finalStat, headFinal } from './final-object.js';
import { uploadGzip } from './gzip-upload.js';
import {
  type ChunkObject,
  deleteKeys,
  type Location,
  listAttempts,
  listChunks,
  locate,
} from './layout.js';
import { abortJournaled } from './multipart-journal.js';
import { readLog } from './reads.js';
import { type ResolvedS3Options, resolveS3Options, type S3StoreOptions } from './settings.js';
import { S3ChunkSink } from './sink.js';
import { type S3SweepOptions, sweepLeftovers } from './sweep.js';

export type { S3StoreOptions } from './settings.js';
export type { S3SweepOptions, SweepSkip } from './sweep.js';

/**
 * The `s3://bucket/prefix` archive, laid out like Airflow's S3 task handler, so Airflow finds
 * tasklog's logs and tasklog reads Airflow's.
 *
 * - A finished log is one object at `prefix/<relative path>`, with user metadata `tasklog-size`
 *   and, only once tasklog checked the stored object against the log's size and sha256,
 *   `tasklog-sha256` (an object Airflow wrote has neither and is a complete log of its
 *   ContentLength bytes).
 * - A running attempt is a set of chunk objects `prefix/<folder>/.<file name>.chunks/<offset>.chunk`
 *   (see `runningPrefix`: outside the key prefix Airflow's reader lists), each one PutObject with
 *   Content-MD5. finish() joins them with a multipart upload (server-side copies where S3
 *   allows), journaled so a killed writer's upload is resumed by the next one, and deletes them.
 *   `sweep()` removes what a killed process left beside a complete log. Chunks an older tasklog
 *   left at `<key>.chunks/` are read, resumed and removed as well.
 * - The SDK is loaded on first use, so a process reading a local archive never loads it.
 *
 * Every contract method runs under `operation` with `s3Error`, which names the bucket and the key.
 */
export class S3Store implements contract.LogStore {
  readonly url: string;
  readonly capabilities: contract.StoreCapabilities;
  readonly bucket: string;
  readonly prefix: string;
  /** The checked options with their defaults filled in. */
  readonly options: Readonly<ResolvedS3Options>;
  #context: Promise<S3Context> | undefined;

  constructor(options: S3StoreOptions) {
    const o = resolveS3Options(options);
    this.options = o;
    this.bucket = o.bucket;
    this.prefix = o.prefix;
    this.capabilities = { liveAppend: true, seekableReads: o.compression !== 'gzip' };
    this.url = `s3://${o.bucket}${o.prefix ? `/${o.prefix}` : ''}`;
  }

  /** `s3://BUCKET/optional/prefix`. Throws InvalidInputError for anything else. */
  static fromUrl(url: string, options: OpenStoreOptions & { listPageSize?: number } = {}): S3Store {
    const m = /^s3:\/\/([^/?#]*)(?:\/([^?#]*))?$/i.exec(url);
    if (!m) {
      throw new InvalidInputError(
        `S3 store URL must look like s3://BUCKET/optional/prefix (no query or fragment), got ${url}`,
      );
    }
    // Like Airflow, which joins remote_base_log_folder and the relative path: a trailing `/`
    // of the URL does not make an empty key segment.
    const prefix = (m[2] ?? '').replace(/\/+$/, '');
    return new S3Store({
      bucket: m[1]!,
      prefix,
      pathTemplate: options.pathTemplate,
      compression: options.compression,
      flushBytes: options.flushBytes,
      s3: options.s3,
      listPageSize: options.listPageSize,
    });
  }

  /**
   * `options.journal` keeps the multipart upload `finish()` assembles the chunks with, so that the
   * next writer resumes the upload of one killed while finishing. Throws ConflictError if the log
   * is already complete (after removing what a killed writer left beside it: chunks, the journal's
   * upload); BackendUnavailableError, AbortedError.
   */
  async openWriter(
    key: AttemptKey,
    options: contract.OpenWriterOptions = {},
  ): Promise<contract.LogWriter> {
    const { signal, journal } = options;
    const loc = this.#locate(key);
    return operation(signal, this.#mapError(loc.final, 'open a writer for'), async () => {
      const ctx = await this.#ctx();
      // Chunks before the final object: a writer finishing in between then shows up as
      // complete (ConflictError) instead of as an empty attempt.
      const chunks = await listChunks(ctx, loc, signal);
      if (await headFinal(ctx, loc.final, signal)) {
        // A writer died between completing the object and deleting its chunks.
        await deleteKeys(
          ctx,
          chunks.map((c) => c.key),
          signal,
        ).catch(() => undefined);
        await abortJournaled(ctx, loc.final, journal, signal).catch(() => undefined);
        throw new ConflictError(`log s3://${this.bucket}/${loc.final} is already complete`);
      }
      const run = contiguousRun(chunks);
      const isMarker = (c: ChunkObject) => c.offset === 0 && c.size === 0;
      // A resumed writer writes new chunks at those offsets and beyond; a stale chunk left there
      // could later look contiguous with different bytes.
      await deleteKeys(
        ctx,
        run.discarded.filter((c) => !isMarker(c)).map((c) => c.key),
        signal,
      );
      if (run.committed === 0 && !chunks.some(isMarker)) {
        // S3 has no folders: without an object a freshly opened attempt would not exist for
        // readers and stat(). An empty chunk at offset 0 marks it (contiguousRun skips it) until
        // the first flush overwrites it with the same name.
        await ctx.client.send(
          new ctx.sdk.PutObjectCommand({
            Bucket: this.bucket,
            Key: `${loc.chunks}${chunkName(0)}`,
            Body: Buffer.alloc(0),
            ContentLength: 0,
            ContentMD5: createHash('md5').digest('base64'),
            ...writeParams(ctx),
          }),
          { abortSignal: signal },
        );
      }
      return new ChunkedWriter(new S3ChunkSink(ctx, loc, this.options.compression, journal), {
        committed: run.committed,
        flushBytes: this.options.flushBytes,
        sha256: true,
      });
    });
  }

  /**
   * Stores a finished local file as the complete log in one pass (see `uploadFile`, `uploadGzip`):
   * one PutObject when it fits one part, else a multipart upload of its own (lib-storage cannot
   * resume) with parts of max(8 MiB, size / 10,000), at most 4 in flight, Content-MD5 on each, its
   * upload id and parts saved in `journal` before and after each part. A later call with the same
   * journal sends only the parts S3 does not hold (gzip: compresses again and skips the parts
   * whose MD5 S3 holds). The stored object is checked (size, ETag against the parts' MD5s) before
   * `tasklog-sha256` is added; the journal is emptied once nothing is left open.
   *
   * With `replace`, a complete log is replaced: CompleteMultipartUpload and PutObject swap the
   * object in one step, so readers see the old log until then.
   *
   * Throws ConflictError if the log is already complete (without `replace`), IntegrityError,
   * AbortedError, BackendUnavailableError.
   */
  async upload(
    key: AttemptKey,
    file: contract.LocalLogFile,
    options: contract.UploadOptions = {},
  ): Promise<void> {
    const { signal, onProgress, journal } = options;
    const loc = this.#locate(key);
    validateExpected(file);
    return operation(signal, this.#mapError(loc.final, 'upload'), async () => {
      const ctx = await this.#ctx();
      if (!options.replace && (await headFinal(ctx, loc.final, signal))) {
        throw new ConflictError(`log s3://${this.bucket}/${loc.final} is already complete`);
      }
      if (this.options.compression === 'gzip') {
        onProgress?.(0, file.size);
        await uploadGzip(ctx, loc.final, readLocalFile(file, { signal }), file, {
          journal,
          signal,
          onBytes: (n) => onProgress?.(n, file.size),
        });
      } else {
        await uploadFile(ctx, loc.final, file, { signal, onProgress, journal });
      }
      const chunks = await listChunks(ctx, loc, signal);
      await deleteKeys(
        ctx,
        chunks.map((c) => c.key),
        signal,
      ).catch(() => undefined);
    });
  }

  /**
   * Streams the finished log (ranged GET), or else the committed chunks of a running attempt,
   * from `offset`. A compressed log is downloaded from its start and inflated (see
   * `compression`). Throws NotFoundError, OffsetOutOfRangeError, InvalidInputError, AbortedError,
   * BackendUnavailableError.
   */
  async *read(
    key: AttemptKey,
    options: contract.ReadOptions = {},
  ): AsyncGenerator<contract.LogChunk> {
    const { offset, end, signal } = checkReadRange(options);
    const loc = this.#locate(key);
    yield* streamOperation(signal, this.#mapError(loc.final, 'read'), () =>
      this.#withContext((ctx) => readLog(ctx, loc, offset, end, signal)),
    );
  }

  /**
   * Finished → `{ size, complete: true, sha256 }` (sha256 only when tasklog verified the
   * object); chunks → committed bytes, not complete; nothing → undefined.
   * Throws BackendUnavailableError.
   */
  async stat(
    key: AttemptKey,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<contract.LogStat | undefined> {
    const loc = this.#locate(key);
    return operation(signal, this.#mapError(loc.final, 'stat'), async () => {
      const ctx = await this.#ctx();
      const final = await headFinal(ctx, loc.final, signal);
      if (final) return finalStat(final);
      const chunks = await listChunks(ctx, loc, signal);
      if (chunks.length === 0) {
        // The writer may have finished between the two looks.
        const late = await headFinal(ctx, loc.final, signal);
        return late ? finalStat(late) : undefined;
      }
      const modified = Math.max(...chunks.map((c) => c.modifiedAt?.getTime() ?? 0));
      return {
        size: contiguousRun(chunks).committed,
        complete: false,
        ...(modified > 0 ? { modifiedAt: new Date(modified) } : {}),
      };
    });
  }

  /**
   * Every finished or running attempt below the prefix matching `filter`: ListObjectsV2 below
   * the longest key prefix the filter fixes. Throws BackendUnavailableError, AbortedError.
   */
  async *list(
    filter: AttemptFilter,
    { signal }: contract.ListOptions = {},
  ): AsyncGenerator<AttemptKey> {
    const wanted = validateFilter(filter);
    const base = this.prefix ? `${this.prefix}/` : '';
    const listPrefix = base + this.options.pathTemplate.prefix(wanted);
    yield* streamOperation(signal, this.#mapError(listPrefix, 'list'), () =>
      this.#withContext((ctx) =>
        listAttempts(ctx, base, listPrefix, this.options.pathTemplate, wanted, signal),
      ),
    );
  }

  /** Removes the finished log and all chunks; a missing attempt is not an error. */
  async delete(key: AttemptKey, { signal }: { signal?: AbortSignal } = {}): Promise<void> {
    const loc = this.#locate(key);
    return operation(signal, this.#mapError(loc.final, 'delete'), async () => {
      const ctx = await this.#ctx();
      // Chunks first: a crash in between leaves the finished log, not a phantom running attempt.
      const chunks = await listChunks(ctx, loc, signal);
      await deleteKeys(
        ctx,
        chunks.map((c) => c.key),
        signal,
      );
      await ctx.client.send(
        new ctx.sdk.DeleteObjectCommand({ Bucket: this.bucket, Key: loc.final }),
        { abortSignal: signal },
      );
    });
  }

  /**
   * Removes what killed writers and uploads left beside a complete log: its chunk objects (the
   * empty offset-0 marker included), the multipart upload `options.journal` names, and every
   * other multipart upload in progress for exactly this key (ListMultipartUploads, for an upload
   * whose id never reached a journal). Steps the server cannot take ("not implemented", e.g.
   * s3rver) are reported to `options.onSkipped` and do not stop the rest. Nothing happens while
   * the log is not complete: its chunks are the log, and its upload is the next finish()'s to
   * resume. Run it when no writer or upload of the attempt is at work (a `replace` upload in
   * flight would be aborted). Throws BackendUnavailableError, AbortedError.
   */
  async sweep(key: AttemptKey, options: S3SweepOptions = {}): Promise<void> {
    const loc = this.#locate(key);
    return operation(options.signal, this.#mapError(loc.final, 'sweep'), async () => {
      const ctx = await this.#ctx();
      if (!(await headFinal(ctx, loc.final, options.signal))) return;
      await sweepLeftovers(ctx, loc, options);
    });
  }

  /** HeadBucket. Throws BackendUnavailableError (missing bucket, bad credentials, no network). */
  async ping({ signal }: { signal?: AbortSignal } = {}): Promise<void> {
    return operation(signal, this.#mapError(undefined, 'reach'), async () => {
      const ctx = await this.#ctx();
      await ctx.client.send(new ctx.sdk.HeadBucketCommand({ Bucket: this.bucket }), {
        abortSignal: signal,
      });
    });
  }

  async close(): Promise<void> {
    const pending = this.#context;
    this.#context = undefined;
    if (pending) (await pending.catch(() => undefined))?.client.destroy();
  }

  /** The SDK and the client, created on first use; a failed start is tried again next time. */
  #ctx(): Promise<S3Context> {
    this.#context ??= createS3Context(this.options).catch((err: unknown) => {
      this.#context = undefined;
      throw err;
    });
    return this.#context;
  }

  /** What `stream` yields once the client is ready: the body of a streaming contract method. */
  async *#withContext<T>(stream: (ctx: S3Context) => AsyncIterable<T>): AsyncGenerator<T> {
    yield* stream(await this.#ctx());
  }

  #locate(key: AttemptKey): Location {
    return locate(this.prefix, this.options.pathTemplate, key);
  }

  /** `s3Error` for one call: what it was doing, and to which key (the bucket when none). */
  #mapError(key: string | undefined, action: string) {
    return (err: unknown) => s3Error(err, this.bucket, key, action);
  }
}
