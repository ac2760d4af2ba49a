import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { GetObjectCommandOutput, HeadObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import type { TasklogConfig } from '../../config/types.js';
import {
  AbortedError,
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  InvalidInputError,
  NotFoundError,
  OffsetOutOfRangeError,
  TasklogError,
} from '../../errors.js';
import { type AttemptFilter, PathTemplate } from '../../path-template.js';
import type {
  ListOptions,
  LocalLogFile,
  LogChunk,
  LogStat,
  LogStore,
  LogWriter,
  OpenWriterOptions,
  ReadOptions,
  StoreCapabilities,
  SweepOptions,
  UploadJournal,
  UploadOptions,
} from '../../store.js';
import type { OpenStoreOptions } from '../registry.js';
import { ChunkBuffer } from '../shared/chunk-buffer.js';
import {
  chunkName,
  contiguousRun,
  legacyRunningPrefix,
  logNameOf,
  matchesFilter,
  parseChunkName,
  runningPrefix,
} from '../shared/chunk-layout.js';
import {
  readLocalFile,
  throwIfAborted,
  validateExpected,
  validateFilter,
} from '../shared/store-checks.js';
import {
  type AbortOutcome,
  abortUpload,
  assembleFromChunks,
  type ChunkObject,
  chunkBytes,
  DEFAULT_PART_SIZE,
  journaledUpload,
  listUploads,
  MIN_PART_SIZE,
  type S3Context,
  unquote,
  uploadFile,
  uploadGzip,
  writeParams,
} from './multipart.js';

export interface S3StoreOptions {
  /** The bucket; it must exist (tasklog never creates buckets). */
  bucket: string;
  /**
   * Key prefix without leading or trailing `/` (the path of Airflow's `remote_base_log_folder`);
   * a log's key is `prefix/<relative path>`, or just the relative path when empty. Default ''.
   */
  prefix?: string;
  /** Where each attempt's log lives below the prefix; default Airflow's layout. */
  pathTemplate?: PathTemplate;
  /**
   * `gzip`: finished logs are stored gzip-compressed (`Content-Encoding: gzip`). Offsets still
   * count uncompressed bytes, but a read from offset N then downloads and inflates the first N
   * bytes too: O(N) instead of O(1) to start. Running attempts' chunks are never compressed.
   * Default `none`.
   */
  compression?: 'none' | 'gzip';
  /** Buffered bytes at which a writer uploads a chunk by itself. Default 8 MiB. */
  flushBytes?: number;
  /** The `[s3]` config section: region, endpoint, role, SSE, storage class, checksum, retries. */
  s3?: Partial<TasklogConfig['s3']>;
  /**
   * Part size of the multipart uploads that store finished logs, at least 5 MiB; raised to fit
   * S3's 10,000 parts. A log (or compressed log) of at most one part is one PutObject. Default 8 MiB.
   */
  partSize?: number;
  /** Keys per ListObjectsV2 page, 1–1000. Default 1000 (S3's maximum). */
  listPageSize?: number;
}

const DEFAULT_FLUSH_BYTES = 8 * 1024 * 1024;
/** S3's DeleteObjects limit. */
const DELETE_BATCH = 1000;
const BUCKET_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{2,254}$/;

interface Location {
  /** Relative path of the log, as the template renders it. */
  rel: string;
  /** Key of the finished log. */
  final: string;
  /** Key prefix of the running attempt's chunks, ending in `/` (see `runningPrefix`). */
  chunks: string;
  /** Where archives written before `runningPrefix` keep chunks: read, resumed and removed, never written. */
  legacyChunks: string;
}

/** A cleanup step `sweep()` could not take because the server lacks the S3 call it needs. */
export interface SweepSkip {
  operation: 'AbortMultipartUpload' | 'ListMultipartUploads';
  /** `s3://bucket/key` the step was about. */
  target: string;
  uploadId?: string;
  /** For the caller's log. */
  message: string;
}

export interface S3SweepOptions extends SweepOptions {
  /**
   * Told about every step skipped because the server answered "not implemented" (s3rver 3.7 has
   * neither AbortMultipartUpload nor ListMultipartUploads); the rest of the sweep goes on.
   */
  onSkipped?: (skip: SweepSkip) => void;
}

interface FinalObject {
  /** Size of the log (uncompressed). */
  size: number;
  gzip: boolean;
  sha256?: string;
  modifiedAt?: Date;
}

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
 */
export class S3Store implements LogStore {
  readonly url: string;
  readonly capabilities: StoreCapabilities;
  readonly bucket: string;
  readonly prefix: string;
  readonly pathTemplate: PathTemplate;
  readonly compression: 'none' | 'gzip';
  readonly flushBytes: number;
  readonly #s3: Partial<TasklogConfig['s3']>;
  readonly #partSize: number | undefined;
  readonly #listPageSize: number;
  #context: Promise<StoreContext> | undefined;

  constructor(options: S3StoreOptions) {
    if (typeof options.bucket !== 'string' || !BUCKET_NAME.test(options.bucket)) {
      throw new InvalidInputError(
        `S3 bucket name must be 3-255 letters, digits, ".", "-" or "_", got ${JSON.stringify(options.bucket)}`,
      );
    }
    const prefix = options.prefix ?? '';
    if (
      prefix !== '' &&
      (prefix.startsWith('/') ||
        prefix.endsWith('/') ||
        prefix.split('/').some((s) => s === '' || s === '.' || s === '..') ||
        /[\u0000-\u001f\u007f\\]/.test(prefix))
    ) {
      throw new InvalidInputError(
        `S3 key prefix must be "/"-separated names without empty, "." or ".." segments, got ${JSON.stringify(prefix)}`,
      );
    }
    const flushBytes = options.flushBytes ?? DEFAULT_FLUSH_BYTES;
    if (!Number.isSafeInteger(flushBytes) || flushBytes < 1) {
      throw new InvalidInputError(`flushBytes must be a positive integer, got ${flushBytes}`);
    }
    const partSize = options.partSize;
    if (partSize !== undefined && (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE)) {
      throw new InvalidInputError(`S3 partSize must be an integer >= 5 MiB, got ${partSize}`);
    }
    const listPageSize = options.listPageSize ?? 1000;
    if (!Number.isSafeInteger(listPageSize) || listPageSize < 1 || listPageSize > 1000) {
      throw new InvalidInputError(`S3 listPageSize must be 1-1000, got ${listPageSize}`);
    }
    this.bucket = options.bucket;
    this.prefix = prefix;
    this.pathTemplate = options.pathTemplate ?? new PathTemplate();
    this.compression = options.compression ?? 'none';
    this.flushBytes = flushBytes;
    this.#s3 = options.s3 ?? {};
    this.#partSize = partSize;
    this.#listPageSize = listPageSize;
    this.capabilities = { liveAppend: true, seekableReads: this.compression !== 'gzip' };
    this.url = `s3://${this.bucket}${prefix ? `/${prefix}` : ''}`;
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
  async openWriter(key: AttemptKey, options: OpenWriterOptions = {}): Promise<LogWriter> {
    const { signal, journal } = options;
    const loc = this.#locate(key);
    try {
      throwIfAborted(signal);
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
      return new S3LogWriter(this, ctx, loc, run.committed, journal);
    } catch (err) {
      throw s3Error(err, this.bucket, loc.final, 'open a writer for');
    }
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
  async upload(key: AttemptKey, file: LocalLogFile, options: UploadOptions = {}): Promise<void> {
    const { signal, onProgress, journal } = options;
    const loc = this.#locate(key);
    validateExpected(file);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      if (!options.replace && (await headFinal(ctx, loc.final, signal))) {
        throw new ConflictError(`log s3://${this.bucket}/${loc.final} is already complete`);
      }
      if (this.compression === 'gzip') {
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
    } catch (err) {
      throw s3Error(err, this.bucket, loc.final, 'upload');
    }
  }

  /**
   * Streams the finished log (ranged GET), or else the committed chunks of a running attempt,
   * from `offset`. A compressed log is downloaded from its start and inflated (see
   * `compression`). Throws NotFoundError, OffsetOutOfRangeError, InvalidInputError, AbortedError,
   * BackendUnavailableError.
   */
  async *read(key: AttemptKey, options: ReadOptions = {}): AsyncGenerator<LogChunk> {
    const { signal } = options;
    const offset = options.offset ?? 0;
    const end = options.end;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new InvalidInputError(`read offset must be an integer >= 0, got ${offset}`);
    }
    if (end !== undefined && (!Number.isSafeInteger(end) || end < offset)) {
      throw new InvalidInputError(`read end must be an integer >= offset (${offset}), got ${end}`);
    }
    const loc = this.#locate(key);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      const final = await headFinal(ctx, loc.final, signal);
      if (final) {
        yield* this.#readFinal(ctx, loc, final, offset, end, signal);
        return;
      }
      yield* this.#readChunks(ctx, loc, offset, end, signal);
    } catch (err) {
      throw s3Error(err, this.bucket, loc.final, 'read');
    }
  }

  /**
   * Finished → `{ size, complete: true, sha256 }` (sha256 only when tasklog verified the
   * object); chunks → committed bytes, not complete; nothing → undefined.
   * Throws BackendUnavailableError.
   */
  async stat(
    key: AttemptKey,
    options: { signal?: AbortSignal } = {},
  ): Promise<LogStat | undefined> {
    const { signal } = options;
    const loc = this.#locate(key);
    try {
      throwIfAborted(signal);
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
    } catch (err) {
      throw s3Error(err, this.bucket, loc.final, 'stat');
    }
  }

  /**
   * Every finished or running attempt below the prefix matching `filter`: ListObjectsV2 below
   * the longest key prefix the filter fixes. Throws BackendUnavailableError, AbortedError.
   */
  async *list(filter: AttemptFilter, options: ListOptions = {}): AsyncGenerator<AttemptKey> {
    const { signal } = options;
    const wanted = validateFilter(filter);
    const base = this.prefix ? `${this.prefix}/` : '';
    const listPrefix = base + this.pathTemplate.prefix(wanted);
    try {
      const ctx = await this.#ctx();
      // A finished log and its leftover chunks share a folder and are listed next to each
      // other, so remembering the attempts of the current folder is enough to yield each once,
      // with memory bounded by the widest folder rather than the bucket.
      let folder: string | undefined;
      let seen = new Set<string>();
      for await (const object of listObjects(ctx, listPrefix, signal)) {
        const rel = this.#attemptRel(object.key.slice(base.length));
        if (rel === undefined) continue;
        const key = this.#keyAt(rel);
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
    } catch (err) {
      throw s3Error(err, this.bucket, listPrefix, 'list');
    }
  }

  /** Removes the finished log and all chunks; a missing attempt is not an error. */
  async delete(key: AttemptKey, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    const loc = this.#locate(key);
    try {
      throwIfAborted(signal);
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
        {
          abortSignal: signal,
        },
      );
    } catch (err) {
      throw s3Error(err, this.bucket, loc.final, 'delete');
    }
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
    const { signal, journal, onSkipped } = options;
    const loc = this.#locate(key);
    try {
      throwIfAborted(signal);
      const ctx = await this.#ctx();
      if (!(await headFinal(ctx, loc.final, signal))) return;
      const chunks = await listChunks(ctx, loc, signal);
      await deleteKeys(
        ctx,
        chunks.map((c) => c.key),
        signal,
      );
      const target = `s3://${this.bucket}/${loc.final}`;
      const skipped = (uploadId: string) =>
        onSkipped?.({
          operation: 'AbortMultipartUpload',
          target,
          uploadId,
          message: `the S3 server cannot abort multipart upload ${uploadId} of ${target} (AbortMultipartUpload not implemented); a bucket lifecycle rule (AbortIncompleteMultipartUpload) must remove it`,
        });
      const journaled = await abortJournaled(ctx, loc.final, journal, signal);
      if (journaled?.outcome === 'unsupported') skipped(journaled.uploadId);
      const open = await listUploads(ctx, loc.final, signal);
      if (open === 'unsupported') {
        onSkipped?.({
          operation: 'ListMultipartUploads',
          target,
          message: `the S3 server cannot list multipart uploads (ListMultipartUploads not implemented), so uploads of ${target} that no journal names are not found`,
        });
        return;
      }
      for (const uploadId of open) {
        const outcome = await abortUpload(ctx, loc.final, uploadId, signal, 'throw');
        if (outcome === 'unsupported') skipped(uploadId);
      }
    } catch (err) {
      throw s3Error(err, this.bucket, loc.final, 'sweep');
    }
  }

  /** HeadBucket. Throws BackendUnavailableError (missing bucket, bad credentials, no network). */
  async ping(options: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      throwIfAborted(options.signal);
      const ctx = await this.#ctx();
      await ctx.client.send(new ctx.sdk.HeadBucketCommand({ Bucket: this.bucket }), {
        abortSignal: options.signal,
      });
    } catch (err) {
      throw s3Error(err, this.bucket, undefined, 'reach');
    }
  }

  async close(): Promise<void> {
    const pending = this.#context;
    this.#context = undefined;
    if (pending) (await pending.catch(() => undefined))?.client.destroy();
  }

  /** The SDK and the client, created on first use. */
  #ctx(): Promise<StoreContext> {
    this.#context ??= this.#createContext().catch((err: unknown) => {
      this.#context = undefined;
      throw err;
    });
    return this.#context;
  }

  async #createContext(): Promise<StoreContext> {
    const sdk = await import('@aws-sdk/client-s3');
    const s3 = this.#s3;
    const credentials = s3.role_arn
      ? (await import('@aws-sdk/credential-providers')).fromTemporaryCredentials({
          params: {
            RoleArn: s3.role_arn,
            RoleSessionName: s3.role_session_name ?? 'tasklog',
            ...(s3.external_id ? { ExternalId: s3.external_id } : {}),
          },
        })
      : undefined; // the SDK's default chain: env, profile, web identity, ECS/EC2 roles
    const client: S3Client = new sdk.S3Client({
      ...(s3.region ? { region: s3.region } : {}),
      ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
      forcePathStyle: s3.force_path_style ?? false,
      maxAttempts: s3.max_attempts ?? 8,
      // Exponential backoff with full jitter; throttling (SlowDown, 503) and transient errors.
      retryMode: 'standard',
      // The SDK's default (WHEN_SUPPORTED) sends every upload aws-chunked with a trailing
      // checksum. S3 decodes that, but s3rver and several S3-compatible stores store the
      // framing as object data: a silently corrupted log. Content-MD5 on every PutObject and
      // UploadPart already lets the server reject damaged bytes; a configured checksum_algorithm
      // opts in to the extra checksum where the store supports it.
      requestChecksumCalculation: s3.checksum_algorithm ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED',
      // Objects assembled by multipart upload have no full-object checksum to validate against,
      // and S3-compatible stores return none; tasklog verifies ETags and sha256 itself.
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(credentials ? { credentials } : {}),
    });
    return {
      sdk,
      client,
      bucket: this.bucket,
      ...(s3.sse ? { sse: s3.sse } : {}),
      ...(s3.kms_key_id ? { kmsKeyId: s3.kms_key_id } : {}),
      ...(s3.storage_class ? { storageClass: s3.storage_class as never } : {}),
      ...(s3.checksum_algorithm ? { checksumAlgorithm: s3.checksum_algorithm } : {}),
      partCopy: true,
      partSize: this.#partSize ?? DEFAULT_PART_SIZE,
      listPageSize: this.#listPageSize,
    };
  }

  #locate(key: AttemptKey): Location {
    const rel = this.pathTemplate.render(attemptKey(key));
    const final = this.prefix ? `${this.prefix}/${rel}` : rel;
    return { rel, final, chunks: runningPrefix(final), legacyChunks: legacyRunningPrefix(final) };
  }

  /** The relative path of the attempt a key (below the prefix) belongs to, if any. */
  #attemptRel(relKey: string): string | undefined {
    const rel = logNameOf(relKey);
    if (rel !== relKey && parseChunkName(relKey.slice(relKey.lastIndexOf('/') + 1)) === undefined) {
      return undefined;
    }
    return rel;
  }

  /** The attempt whose canonical path is exactly `rel`, if any. */
  #keyAt(rel: string): AttemptKey | undefined {
    const key = this.pathTemplate.tryParse(rel);
    if (!key) return undefined;
    try {
      return this.pathTemplate.render(key) === rel ? key : undefined;
    } catch {
      return undefined;
    }
  }

  async *#readFinal(
    ctx: StoreContext,
    loc: Location,
    final: FinalObject,
    offset: number,
    end: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<LogChunk> {
    if (offset > final.size) throw new OffsetOutOfRangeError(offset, final.size);
    const stop = Math.min(end ?? final.size, final.size);
    if (offset >= stop) return;
    if (final.gzip) {
      const res = await getObject(ctx, loc.final, undefined, signal);
      yield* skipAndCap(inflate(res.Body as Readable), offset, stop, signal);
      return;
    }
    // Never a suffix range (`bytes=-N`): s3rver answers those wrong. `bytes=0-0` is another
    // s3rver quirk (it returns the whole object), which skipAndCap's cap absorbs.
    const res = await getObject(ctx, loc.final, `bytes=${offset}-${stop - 1}`, signal);
    yield* skipAndCap(res.Body as Readable, 0, stop - offset, signal, offset);
  }

  async *#readChunks(
    ctx: StoreContext,
    loc: Location,
    offset: number,
    end: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<LogChunk> {
    const listed = await listChunks(ctx, loc, signal);
    if (listed.length === 0) {
      const late = await headFinal(ctx, loc.final, signal);
      if (late) {
        yield* this.#readFinal(ctx, loc, late, offset, end, signal);
        return;
      }
      throw new NotFoundError(`no log stored at s3://${this.bucket}/${loc.final}`);
    }
    const { chunks, committed } = contiguousRun(listed);
    if (offset > committed) throw new OffsetOutOfRangeError(offset, committed);
    const stop = Math.min(end ?? committed, committed);
    let pos = offset;
    for (const chunk of chunks) {
      const chunkEnd = chunk.offset + chunk.size;
      if (pos >= stop) break;
      if (chunkEnd <= pos) continue;
      const to = Math.min(stop, chunkEnd);
      let res: GetObjectCommandOutput;
      try {
        res = await getObject(
          ctx,
          chunk.key,
          `bytes=${pos - chunk.offset}-${to - chunk.offset - 1}`,
          signal,
        );
      } catch (err) {
        if (!isMissingKey(err)) throw err;
        // A writer finished and deleted its chunks; the finished log holds the same bytes at
        // the same offsets, so the reader carries on there without a gap or a repeat.
        const finished = await headFinal(ctx, loc.final, signal);
        if (!finished) {
          throw new NotFoundError(
            `log s3://${this.bucket}/${loc.final} vanished while being read`,
            {
              cause: err,
            },
          );
        }
        yield* this.#readFinal(ctx, loc, finished, pos, stop, signal);
        return;
      }
      for await (const piece of skipAndCap(res.Body as Readable, 0, to - pos, signal, pos)) {
        yield piece;
      }
      pos = to;
    }
  }
}

class S3LogWriter implements LogWriter {
  #committed: number;
  readonly #buffer = new ChunkBuffer();
  #state: 'open' | 'finished' | 'aborted' = 'open';
  /** Operations run one at a time, in call order, even if a caller does not await each one. */
  #tail: Promise<unknown> = Promise.resolve();
  /** sha256 of every byte of the log, while this writer has seen all of them (opened at 0). */
  readonly #hash = createHash('sha256');
  readonly #sawAll: boolean;

  constructor(
    private readonly store: S3Store,
    private readonly ctx: StoreContext,
    private readonly loc: Location,
    committed: number,
    private readonly journal: UploadJournal | undefined,
  ) {
    this.#committed = committed;
    this.#sawAll = committed === 0;
  }

  get committedOffset(): number {
    return this.#committed;
  }

  get offset(): number {
    return this.#committed + this.#buffer.size;
  }

  /**
   * Throws ConflictError after finish/abort. Once `flushBytes` are buffered, uploads a chunk that
   * ends on the last line end (see ChunkBuffer); a failed automatic flush keeps the bytes buffered.
   */
  append(bytes: Uint8Array): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      if (bytes.length === 0) return;
      // Copied: callers may reuse their buffer as soon as append resolves.
      const copy = Buffer.from(bytes);
      this.#buffer.push(copy);
      this.#hash.update(copy);
      if (this.#buffer.size >= this.store.flushBytes) await this.#flushNow('lines');
    });
  }

  flush(): Promise<number> {
    return this.#serial(async () => {
      this.#assertOpen();
      return this.#flushNow();
    });
  }

  finish(expected: { size: number; sha256: string }): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      validateExpected(expected);
      const want = { size: expected.size, sha256: expected.sha256.toLowerCase() };
      await this.#flushNow();
      const { ctx, loc, store } = this;
      try {
        if (this.#sawAll) {
          const mine = this.#hash.copy().digest('hex');
          if (this.#committed !== want.size || mine !== want.sha256) {
            throw new IntegrityError(
              `log s3://${ctx.bucket}/${loc.final} has ${this.#committed} bytes with sha256 ${mine}, expected ${want.size} bytes with sha256 ${want.sha256}; chunks kept`,
            );
          }
        }
        if (await headFinal(ctx, loc.final, undefined)) {
          throw new ConflictError(`log s3://${ctx.bucket}/${loc.final} is already complete`);
        }
        const listed = await listChunks(ctx, loc, undefined);
        const run = contiguousRun(listed);
        if (run.committed !== want.size) {
          throw new IntegrityError(
            `log s3://${ctx.bucket}/${loc.final} has ${run.committed} bytes in its chunks, expected ${want.size}; chunks kept`,
          );
        }
        const { journal } = this;
        if (store.compression === 'gzip') {
          await uploadGzip(ctx, loc.final, chunkBytes(ctx, run.chunks, undefined), want, {
            journal,
          });
        } else {
          await assembleFromChunks(ctx, loc.final, run.chunks, want, this.#sawAll, { journal });
        }
        this.#state = 'finished';
        // The log is complete once the object exists. If deleting the chunks fails, readers
        // already prefer the finished object, and delete() / the next openWriter() remove them.
        await deleteKeys(
          ctx,
          listed.map((c) => c.key),
          undefined,
        ).catch(() => undefined);
      } catch (err) {
        throw s3Error(err, ctx.bucket, loc.final, 'finish');
      }
    });
  }

  async abort(): Promise<void> {
    if (this.#state === 'open') this.#state = 'aborted';
    this.#buffer.clear();
    await this.#tail;
  }

  /** `all`: every buffered byte (flush, finish); `lines`: while full, up to the last line end. */
  async #flushNow(mode: 'all' | 'lines' = 'all'): Promise<number> {
    const { ctx, loc } = this;
    while (this.#buffer.size >= (mode === 'all' ? 1 : this.store.flushBytes)) {
      const data = this.#buffer.next(mode);
      if (data.length === 0) break; // only the first bytes of one character: wait for the rest
      try {
        await ctx.client.send(
          new ctx.sdk.PutObjectCommand({
            Bucket: ctx.bucket,
            Key: `${loc.chunks}${chunkName(this.#committed)}`,
            Body: data,
            ContentLength: data.length,
            // S3 rejects the chunk if its bytes do not hash to this (s3rver does not check it).
            ContentMD5: createHash('md5').update(data).digest('base64'),
            ...writeParams(ctx),
          }),
        );
      } catch (err) {
        throw s3Error(err, ctx.bucket, loc.final, 'flush');
      }
      this.#committed += data.length;
      this.#buffer.commit(data.length);
    }
    return this.#committed;
  }

  #assertOpen(): void {
    if (this.#state !== 'open') {
      throw new ConflictError(
        `writer of s3://${this.ctx.bucket}/${this.loc.final} is already ${this.#state}`,
      );
    }
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(op, op);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

/** The client context plus the store's listing page size. */
interface StoreContext extends S3Context {
  readonly listPageSize: number;
}

/** HeadObject of the finished log; undefined when there is none. */
async function headFinal(
  ctx: StoreContext,
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
  const declared = meta['tasklog-size'] === undefined ? Number.NaN : Number(meta['tasklog-size']);
  const sha256 = meta['tasklog-sha256'];
  return {
    // An object without tasklog's metadata (Airflow wrote it) is a complete log of its bytes.
    size: Number.isSafeInteger(declared) && declared >= 0 ? declared : stored,
    gzip: /\bgzip\b/i.test(head.ContentEncoding ?? ''),
    ...(sha256 && /^[0-9a-f]{64}$/.test(sha256) ? { sha256 } : {}),
    ...(head.LastModified ? { modifiedAt: head.LastModified } : {}),
  };
}

function getObject(
  ctx: StoreContext,
  key: string,
  range: string | undefined,
  signal: AbortSignal | undefined,
): Promise<GetObjectCommandOutput> {
  return ctx.client.send(
    new ctx.sdk.GetObjectCommand({
      Bucket: ctx.bucket,
      Key: key,
      ...(range ? { Range: range } : {}),
    }),
    { abortSignal: signal },
  );
}

/** Every object below `prefix`, page by page. */
async function* listObjects(
  ctx: StoreContext,
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
async function listChunks(
  ctx: StoreContext,
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

/** DeleteObjects in batches of S3's limit; a missing key is not an error. */
async function deleteKeys(
  ctx: StoreContext,
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

/** Aborts the multipart upload of `key` the journal names, if any, and empties the journal. */
async function abortJournaled(
  ctx: StoreContext,
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

function inflate(body: Readable): Readable {
  const gunzip = createGunzip();
  body.on('error', (err) => gunzip.destroy(err));
  gunzip.on('close', () => body.destroy());
  return body.pipe(gunzip);
}

/**
 * Yields `body` as log pieces: drops its first `skip` bytes, stops after byte `stop` of the body
 * (destroying the rest, so the connection is released), numbers pieces from `base + skip`.
 */
async function* skipAndCap(
  body: Readable,
  skip: number,
  stop: number,
  signal: AbortSignal | undefined,
  base = 0,
): AsyncGenerator<LogChunk> {
  let pos = 0;
  try {
    for await (const raw of body as AsyncIterable<Uint8Array>) {
      throwIfAborted(signal);
      const from = Math.max(skip - pos, 0);
      const to = Math.min(raw.length, stop - pos);
      if (to > from) yield { offset: base + pos + from, bytes: raw.subarray(from, to) };
      pos += raw.length;
      if (pos >= stop) return;
    }
  } finally {
    body.destroy();
  }
  if (pos < stop) {
    if (base === 0 && skip > pos) throw new OffsetOutOfRangeError(skip, pos);
    throw new IntegrityError(`stored object ended at byte ${base + pos}, before ${base + stop}`);
  }
}

function finalStat(final: FinalObject): LogStat {
  return {
    size: final.size,
    complete: true,
    ...(final.sha256 ? { sha256: final.sha256 } : {}),
    ...(final.modifiedAt ? { modifiedAt: final.modifiedAt } : {}),
  };
}

/** GetObject answers `NoSuchKey`; HeadObject, having no body, only `NotFound` (404). */
function isMissingKey(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

const CREDENTIAL_ERRORS = new Set([
  'AccessDenied',
  'Forbidden',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'CredentialsProviderError',
]);
const THROTTLING = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeTooSkewed',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/**
 * The one place S3 SDK errors become tasklog errors. Every message names the bucket and the key
 * (or prefix), every error keeps the SDK's as `cause`. NoSuchUpload is handled where it happens.
 */
function s3Error(
  err: unknown,
  bucket: string,
  key: string | undefined,
  action: string,
): TasklogError {
  if (err instanceof TasklogError) return err;
  const e = (err ?? {}) as {
    name?: string;
    code?: string;
    message?: string;
    errors?: { code?: string }[];
    $metadata?: { httpStatusCode?: number };
  };
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const code = e.code ?? e.errors?.find((x) => x.code)?.code;
  const where = key === undefined ? `bucket ${bucket}` : `s3://${bucket}/${key}`;
  const detail = `${name}${status ? ` (HTTP ${status})` : ''}${e.message && e.message !== name ? `: ${e.message}` : ''}`;
  const cause = { cause: err };
  if (name === 'AbortError' || code === 'ABORT_ERR') {
    return new AbortedError(`${action} ${where} was aborted`, cause);
  }
  if (name === 'NoSuchBucket' || (key === undefined && status === 404)) {
    return new BackendUnavailableError(
      `bucket ${bucket} does not exist; create it or fix store.url (while trying to ${action} ${where})`,
      cause,
    );
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
    return new NotFoundError(`no log stored at ${where}`, cause);
  }
  if (CREDENTIAL_ERRORS.has(name) || status === 401 || status === 403) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: access denied (${detail}); check the credentials in the AWS default chain (AWS_* environment, profile, instance or task role) or s3.role_arn`,
      cause,
    );
  }
  if (/region is missing/i.test(e.message ?? '')) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: no AWS region; set s3.region or AWS_REGION`,
      cause,
    );
  }
  if (code !== undefined && NETWORK_CODES.has(code)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: S3 endpoint not reachable (${code})`,
      cause,
    );
  }
  if (name === 'TimeoutError') {
    return new BackendUnavailableError(`cannot ${action} ${where}: S3 timed out`, cause);
  }
  if (THROTTLING.has(name) || (status !== undefined && status >= 500)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: S3 is throttling or failing even after retries (${detail})`,
      cause,
    );
  }
  return new BackendUnavailableError(`cannot ${action} ${where}: ${detail}`, cause);
}
