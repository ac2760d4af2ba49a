import { createHash } from 'node:crypto';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { Bucket, File, FileMetadata } from '@google-cloud/storage';
import { type AttemptKey, attemptKey } from '../../attempt-key.js';
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
import { readLocalFile, throwIfAborted, validateFilter } from '../shared/store-checks.js';

export interface GcsStoreOptions {
  /** Bucket name (the `BUCKET` of `gs://BUCKET/prefix`). */
  bucket: string;
  /** Object name prefix without leading or trailing `/`; default none. Objects are `prefix/<relative path>`. */
  prefix?: string;
  /** Where each attempt's log lives below the prefix; default Airflow's layout, so Airflow finds the objects. */
  pathTemplate?: PathTemplate;
  /** `gzip`: finished logs are stored gzip-encoded (offsets stay uncompressed). Default `none`. */
  compression?: 'none' | 'gzip';
  /** Buffered bytes at which a writer uploads a chunk object by itself; default 8 MiB. */
  flushBytes?: number;
  /** Google Cloud project; default from Application Default Credentials. */
  projectId?: string;
  /** Override of `https://storage.googleapis.com`, e.g. an emulator. */
  apiEndpoint?: string;
  /** Service accounts to impersonate on top of ADC, the last one acting; default none. */
  impersonationChain?: readonly string[];
  /** Attempts per request (the SDK retries with exponential backoff); default 3. */
  maxAttempts?: number;
  /**
   * Longest wait between two retries, in seconds, at least 1 (the SDK's uploads always wait
   * 1 s before their first retry and reject a smaller cap); default the SDK's 64.
   */
  maxRetryDelaySeconds?: number;
  /** Objects per list request; default 1000 (the API's maximum). */
  listPageSize?: number;
  /** Bytes per request of a resumable upload, a multiple of 256 KiB; default 8 MiB. */
  uploadChunkSize?: number;
}

const MIB = 1024 * 1024;
const DEFAULT_FLUSH_BYTES = 8 * MIB;
const DEFAULT_UPLOAD_CHUNK_SIZE = 8 * MIB;
/** Resumable upload requests must carry a multiple of 256 KiB (all but the last). */
const UPLOAD_CHUNK_QUANTUM = 256 * 1024;
const DEFAULT_MAX_ATTEMPTS = 3;
const DEFAULT_LIST_PAGE_SIZE = 1000;
/** https://cloud.google.com/storage/docs/composing-objects: at most 32 sources per compose. */
const COMPOSE_LIMIT = 32;
const DELETE_CONCURRENCY = 8;
const LOG_CONTENT_TYPE = 'text/plain; charset=utf-8';
const CHUNK_CONTENT_TYPE = 'application/octet-stream';
/** Custom metadata of a finished log: its uncompressed size and verified sha256. */
const META_SIZE = 'tasklog-size';
const META_SHA256 = 'tasklog-sha256';
/**
 * Marks a running attempt before its first flush, so it is listed and readable (as empty) from
 * the moment a writer opens, like a local chunk folder. Not a chunk name, so never log bytes.
 */
const RUNNING_MARKER = 'running';
const BUCKET_NAME = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

type Sdk = typeof import('@google-cloud/storage');

interface Location {
  /** Relative path of the finished log, as the template renders it. */
  rel: string;
  /** Object name of the finished log. */
  final: string;
  /** Object name prefix of the running attempt's chunks, ending in `/` (see `runningPrefix`). */
  chunkPrefix: string;
  /** Where archives written before `runningPrefix` keep chunks: read, resumed and removed, never written. */
  legacyChunkPrefix: string;
}

interface ChunkObject {
  offset: number;
  size: number;
  file: File;
}

interface ChunkListing {
  /** The contiguous run from byte 0 (see `contiguousRun`). */
  chunks: ChunkObject[];
  committed: number;
  /** Chunk objects outside that run. */
  discarded: ChunkObject[];
  /** Every object under the chunk prefix: chunks, the running marker, compose leftovers. */
  all: File[];
  modifiedAt?: Date;
}

/**
 * What a resumable upload (`upload()`, a gzip writer's `finish()`) keeps in the caller's journal
 * to resume its session.
 */
interface UploadState {
  version: 1;
  object: string;
  uri: string;
  size: number;
  sha256: string;
  compression: 'none' | 'gzip';
}

/**
 * The `gs://bucket/prefix` archive on Google Cloud Storage, laid out like Airflow's
 * GCSTaskHandler so each side finds the other's logs.
 *
 * - A finished log is one object `prefix/<relative path>` (plain text, or gzip-encoded with
 *   `compression: 'gzip'`), with custom metadata `tasklog-size` and, once the stored object was
 *   checked against the log's size and sha256, `tasklog-sha256` (patched on with
 *   ifMetagenerationMatch, so it never lands on an object that changed after the check).
 * - A running attempt is a set of immutable chunk objects
 *   `prefix/<folder>/.<file name>.chunks/<offset>.chunk` (see `runningPrefix`: outside the prefix
 *   Airflow's reader lists), each created with `ifGenerationMatch: 0`, so a retried request can
 *   never replace bytes. On finish they are composed (32 at a time, in levels) into the final
 *   object and removed. Chunks an older tasklog left at `<key>.chunks/` are read, resumed and
 *   removed as well.
 * - Credentials come from Application Default Credentials only, optionally impersonating a
 *   chain of service accounts. The SDK is loaded on first use.
 */
export class GcsStore implements LogStore {
  readonly url: string;
  readonly capabilities: StoreCapabilities;
  readonly bucketName: string;
  readonly prefix: string;
  readonly pathTemplate: PathTemplate;
  readonly compression: 'none' | 'gzip';
  readonly flushBytes: number;
  readonly listPageSize: number;
  readonly uploadChunkSize: number;
  readonly #options: GcsStoreOptions;
  #backend: Promise<Backend> | undefined;

  constructor(options: GcsStoreOptions) {
    if (typeof options.bucket !== 'string' || !BUCKET_NAME.test(options.bucket)) {
      throw new InvalidInputError(
        `GCS bucket name must be 3-222 characters of a-z, 0-9, ".", "_" and "-", got ${JSON.stringify(options.bucket)}`,
      );
    }
    const prefix = options.prefix ?? '';
    if (prefix.startsWith('/') || prefix.endsWith('/') || prefix.includes('//')) {
      throw new InvalidInputError(
        `GCS prefix must not start or end with "/" nor contain "//", got ${JSON.stringify(prefix)}`,
      );
    }
    if (/[\u0000-\u001f\u007f]/.test(prefix)) {
      throw new InvalidInputError('GCS prefix must not contain control characters');
    }
    this.bucketName = options.bucket;
    this.prefix = prefix;
    this.pathTemplate = options.pathTemplate ?? new PathTemplate();
    this.compression = options.compression ?? 'none';
    this.flushBytes = positiveInt('flushBytes', options.flushBytes ?? DEFAULT_FLUSH_BYTES);
    this.listPageSize = positiveInt('listPageSize', options.listPageSize ?? DEFAULT_LIST_PAGE_SIZE);
    if (this.listPageSize > DEFAULT_LIST_PAGE_SIZE) {
      throw new InvalidInputError(`GCS listPageSize must be 1-1000, got ${this.listPageSize}`);
    }
    this.uploadChunkSize = positiveInt(
      'uploadChunkSize',
      options.uploadChunkSize ?? DEFAULT_UPLOAD_CHUNK_SIZE,
    );
    if (this.uploadChunkSize % UPLOAD_CHUNK_QUANTUM !== 0) {
      throw new InvalidInputError(
        `GCS uploadChunkSize must be a multiple of 256 KiB, got ${this.uploadChunkSize}`,
      );
    }
    positiveInt('maxAttempts', options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS);
    const maxDelay = options.maxRetryDelaySeconds;
    if (maxDelay !== undefined && !(Number.isFinite(maxDelay) && maxDelay >= 1)) {
      throw new InvalidInputError(`GCS maxRetryDelaySeconds must be >= 1, got ${maxDelay}`);
    }
    this.#options = options;
    this.capabilities = { liveAppend: true, seekableReads: this.compression !== 'gzip' };
    this.url = `gs://${this.bucketName}${prefix ? `/${prefix}` : ''}`;
  }

  /**
   * `gs://BUCKET` or `gs://BUCKET/prefix` (a trailing `/` is ignored), with the `[gcs]` settings
   * from `options.gcs`; `overrides` sets options the config file does not carry (tests, tools).
   * Throws InvalidInputError.
   */
  static fromUrl(
    url: string,
    options: OpenStoreOptions = {},
    overrides: Partial<GcsStoreOptions> = {},
  ): GcsStore {
    const m = /^gs:\/\/([^/?#]+)(?:\/([^?#]*))?$/i.exec(url);
    if (!m) {
      throw new InvalidInputError(
        `GCS store URL must look like gs://BUCKET/optional/prefix, got ${JSON.stringify(url)}`,
      );
    }
    const gcs = options.gcs ?? {};
    const chain = gcs.impersonation_chain
      ?.split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    return new GcsStore({
      bucket: m[1]!,
      prefix: (m[2] ?? '').replace(/\/+$/, ''),
      pathTemplate: options.pathTemplate,
      compression: options.compression,
      flushBytes: options.flushBytes,
      projectId: gcs.project_id,
      apiEndpoint: gcs.api_endpoint,
      impersonationChain: chain && chain.length > 0 ? chain : undefined,
      maxAttempts: gcs.max_attempts,
      ...overrides,
    });
  }

  /**
   * `options.journal` keeps the resumable upload session of a gzip `finish()`, so the next writer
   * resumes one killed while finishing. Throws ConflictError when the log is already finished
   * (after removing what a killed writer left beside it); BackendUnavailableError, AbortedError.
   */
  async openWriter(key: AttemptKey, options: OpenWriterOptions = {}): Promise<LogWriter> {
    const { signal, journal } = options;
    throwIfAborted(signal);
    const loc = this.#locate(key);
    const be = await this.#connect();
    if (await be.metadata(loc.final, signal)) {
      // A writer died between composing the final object and removing its chunks.
      await be.sweepBeside(loc, journal, signal).catch(() => undefined);
      throw new ConflictError(`log ${be.describe(loc.final)} is already complete`);
    }
    await be.createIfMissing(loc.chunkPrefix + RUNNING_MARKER, Buffer.alloc(0), signal);
    const listing = await be.listChunks(loc, signal);
    // A resumed writer writes new chunks at those offsets and beyond; a stale chunk left there
    // could later look contiguous with different bytes, and would make its create fail (412).
    await be.deleteAll(
      listing.discarded.map((c) => c.file),
      signal,
    );
    return new GcsLogWriter(be, loc, listing.committed, journal);
  }

  /**
   * Stores a finished local file as the complete log with one resumable upload (see
   * `Backend.uploadResumable`): resumed from `journal` after a crash, checked before
   * `tasklog-sha256` is set. With `replace`, a complete log is replaced: the upload is created with
   * ifGenerationMatch of its current generation, and GCS swaps the object when the upload
   * finalizes, so readers see the old log until then. Throws ConflictError (complete without
   * `replace`, or changed meanwhile), IntegrityError, BackendUnavailableError, AbortedError.
   */
  async upload(key: AttemptKey, file: LocalLogFile, options: UploadOptions = {}): Promise<void> {
    const { signal, journal, onProgress } = options;
    throwIfAborted(signal);
    const loc = this.#locate(key);
    const be = await this.#connect();
    await be.uploadResumable(loc.final, () => readLocalFile(file), file, {
      label: file.path,
      journal,
      signal,
      onProgress,
      replace: options.replace === true,
    });
    await be.deleteAll(await be.listRunning(loc, signal), signal);
  }

  /**
   * Streams the finished log, or else the committed chunks of a running attempt, from `offset`.
   * A gzip-encoded log is decompressed from its start (cost O(offset)). Throws NotFoundError,
   * OffsetOutOfRangeError, IntegrityError, InvalidInputError, AbortedError, BackendUnavailableError.
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
    throwIfAborted(signal);
    const loc = this.#locate(key);
    const be = await this.#connect();
    const final = await be.metadata(loc.final, signal);
    if (final) {
      yield* be.readFinal(loc.final, final, offset, end, signal);
      return;
    }
    const listing = await be.listChunks(loc, signal);
    if (listing.all.length === 0) {
      // The writer may have finished between our two looks.
      const late = await be.metadata(loc.final, signal);
      if (late) {
        yield* be.readFinal(loc.final, late, offset, end, signal);
        return;
      }
      throw new NotFoundError(`no log stored for ${be.describe(loc.final)}`);
    }
    const size = listing.committed;
    if (offset > size) throw new OffsetOutOfRangeError(offset, size);
    const stop = Math.min(end ?? size, size);
    let pos = offset;
    for (const chunk of listing.chunks) {
      if (pos >= stop) return;
      const chunkEnd = chunk.offset + chunk.size;
      if (chunkEnd <= pos) continue;
      try {
        for await (const piece of be.readChunk(chunk, pos, Math.min(stop, chunkEnd), signal)) {
          yield piece;
          pos += piece.bytes.length;
        }
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        // A writer finished and removed its chunks; the final object holds the same bytes at the
        // same offsets, so the reader carries on there without a gap or a repeat.
        const finished = await be.metadata(loc.final, signal);
        if (!finished) {
          throw new NotFoundError(`log ${be.describe(loc.final)} vanished while being read`, {
            cause: err,
          });
        }
        yield* be.readFinal(loc.final, finished, pos, stop, signal);
        return;
      }
    }
  }

  /** Finished → complete; chunks → committed bytes, not complete; nothing → undefined. */
  async stat(
    key: AttemptKey,
    options: { signal?: AbortSignal } = {},
  ): Promise<LogStat | undefined> {
    const { signal } = options;
    throwIfAborted(signal);
    const loc = this.#locate(key);
    const be = await this.#connect();
    const final = await be.metadata(loc.final, signal);
    if (final) return finalStat(final);
    const listing = await be.listChunks(loc, signal);
    if (listing.all.length === 0) {
      const late = await be.metadata(loc.final, signal);
      return late ? finalStat(late) : undefined;
    }
    return { size: listing.committed, complete: false, modifiedAt: listing.modifiedAt };
  }

  /** Every finished or running attempt below the prefix matching every field given in `filter`. */
  async *list(filter: AttemptFilter, options: ListOptions = {}): AsyncGenerator<AttemptKey> {
    const { signal } = options;
    const wanted = validateFilter(filter);
    const be = await this.#connect();
    const root = this.prefix ? `${this.prefix}/` : '';
    // A finished log `rel`, its chunks `.rel.chunks/...` and an older archive's `rel.chunks/...`
    // all name one attempt. Names come in byte order, and all of them sort below the later of
    // `.rel.chunks0` and `rel.chunks0` ('0' follows '/'), so a remembered attempt is forgotten
    // once the listing passes that bound: memory stays bounded by the attempts whose objects are
    // interleaved, not by the archive.
    const seen = new Map<string, Buffer>();
    for await (const name of be.listNames(root + this.pathTemplate.prefix(wanted), signal)) {
      const here = Buffer.from(name);
      for (const [rel, bound] of seen) {
        if (Buffer.compare(here, bound) >= 0) seen.delete(rel);
      }
      const found = this.#attemptOf(name.slice(root.length));
      if (!found || seen.has(found.rel)) continue;
      const ends = [runningPrefix(root + found.rel), legacyRunningPrefix(root + found.rel)].map(
        (area) => Buffer.from(`${area.slice(0, -1)}0`),
      );
      seen.set(found.rel, Buffer.compare(ends[0]!, ends[1]!) > 0 ? ends[0]! : ends[1]!);
      if (matchesFilter(found.key, wanted)) yield found.key;
    }
  }

  /** Removes the finished log and every chunk object; a missing attempt is not an error. */
  async delete(key: AttemptKey, options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    throwIfAborted(signal);
    const loc = this.#locate(key);
    const be = await this.#connect();
    // Chunks first: a crash in between leaves the finished log, not a phantom running attempt.
    await be.deleteAll(await be.listRunning(loc, signal), signal);
    await be.deleteObject(loc.final, undefined, signal);
  }

  /**
   * Removes what killed writers and uploads left beside a complete log: every object under its
   * chunk prefix (chunks, the `running` marker, compose intermediates), and cancels the resumable
   * upload session `options.journal` names. Nothing while the log is not complete (its chunks are
   * the log). Run it when no writer or upload of the attempt is at work. Throws
   * BackendUnavailableError, AbortedError.
   */
  async sweep(key: AttemptKey, options: SweepOptions = {}): Promise<void> {
    const { signal, journal } = options;
    throwIfAborted(signal);
    const loc = this.#locate(key);
    const be = await this.#connect();
    if (!(await be.metadata(loc.final, signal))) return;
    await be.sweepBeside(loc, journal, signal);
  }

  /** Throws BackendUnavailableError unless the bucket exists and the credentials may see it. */
  async ping(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    throwIfAborted(signal);
    const be = await this.#connect();
    let exists: boolean;
    try {
      [exists] = await be.bucket.exists();
    } catch (err) {
      throw be.error(err, 'check', undefined, signal);
    }
    if (!exists) throw new BackendUnavailableError(`bucket ${this.bucketName} does not exist`);
  }

  async close(): Promise<void> {
    // The SDK keeps no sockets open beyond Node's keep-alive agent, which does not hold the process.
  }

  #locate(key: AttemptKey): Location {
    const rel = this.pathTemplate.render(attemptKey(key));
    const final = this.prefix ? `${this.prefix}/${rel}` : rel;
    return {
      rel,
      final,
      chunkPrefix: runningPrefix(final),
      legacyChunkPrefix: legacyRunningPrefix(final),
    };
  }

  /**
   * The attempt an object name (relative to the prefix) belongs to: its log, or an object of its
   * running attempt (a chunk, the marker, a compose intermediate).
   */
  #attemptOf(name: string): { rel: string; key: AttemptKey } | undefined {
    const rel = logNameOf(name);
    const key = this.pathTemplate.tryParse(rel);
    if (!key) return undefined;
    try {
      return this.pathTemplate.render(key) === rel ? { rel, key } : undefined;
    } catch {
      return undefined;
    }
  }

  #connect(): Promise<Backend> {
    this.#backend ??= Backend.connect(this, this.#options);
    // A failed start (say, no credentials yet) must not stick: the next call tries again.
    this.#backend.catch(() => {
      this.#backend = undefined;
    });
    return this.#backend;
  }
}

/** The SDK client and the operations the store and its writers share. */
class Backend {
  private constructor(
    readonly store: GcsStore,
    readonly sdk: Sdk,
    readonly bucket: Bucket,
  ) {}

  static async connect(store: GcsStore, options: GcsStoreOptions): Promise<Backend> {
    let sdk: Sdk;
    try {
      sdk = await import('@google-cloud/storage');
    } catch (err) {
      throw new BackendUnavailableError('cannot load @google-cloud/storage', { cause: err });
    }
    const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    const storage = new sdk.Storage({
      projectId: options.projectId,
      apiEndpoint: options.apiEndpoint,
      retryOptions: {
        // The SDK treats maxRetries 0 as "unset" (its default, 3), so one attempt means autoRetry off.
        autoRetry: maxAttempts > 1,
        maxRetries: Math.max(1, maxAttempts - 1),
        ...(options.maxRetryDelaySeconds !== undefined
          ? { maxRetryDelay: options.maxRetryDelaySeconds }
          : {}),
        // Every write is idempotent by construction: objects have deterministic names and are
        // created with ifGenerationMatch 0, so a retried request either lands once or gets 412.
        idempotencyStrategy: sdk.IdempotencyStrategy.RetryAlways,
      },
      authClient: options.impersonationChain?.length
        ? await impersonatedClient(options.impersonationChain)
        : undefined,
    });
    return new Backend(store, sdk, storage.bucket(store.bucketName));
  }

  describe(object: string): string {
    return `gs://${this.bucket.name}/${object}`;
  }

  error(
    err: unknown,
    action: string,
    object: string | undefined,
    signal?: AbortSignal,
  ): TasklogError {
    return gcsError(err, action, this.bucket.name, object, signal);
  }

  /** The object's metadata, or undefined when it does not exist. */
  async metadata(object: string, signal?: AbortSignal): Promise<FileMetadata | undefined> {
    throwIfAborted(signal);
    try {
      const [meta] = await this.bucket.file(object).getMetadata();
      return meta;
    } catch (err) {
      if (isObjectMissing(err)) return undefined;
      throw this.error(err, 'look up', object, signal);
    }
  }

  async *listFiles(prefix: string, signal?: AbortSignal): AsyncGenerator<File> {
    let pageToken: string | undefined;
    do {
      throwIfAborted(signal);
      let files: File[];
      let next: { pageToken?: string } | null | undefined;
      try {
        [files, next] = await this.bucket.getFiles({
          prefix,
          autoPaginate: false,
          maxResults: this.store.listPageSize,
          pageToken,
        });
      } catch (err) {
        throw this.error(err, 'list', `${prefix}*`, signal);
      }
      yield* files;
      pageToken = next?.pageToken || undefined;
    } while (pageToken);
  }

  async *listNames(prefix: string, signal?: AbortSignal): AsyncGenerator<string> {
    for await (const file of this.listFiles(prefix, signal)) yield file.name;
  }

  /** Every object under `prefix`; used for one attempt's chunks, so it stays small. */
  async listAll(prefix: string, signal?: AbortSignal): Promise<File[]> {
    const out: File[] = [];
    for await (const file of this.listFiles(prefix, signal)) out.push(file);
    return out;
  }

  /**
   * Every object of a running attempt, in its place and in the place older archives kept it (a
   * writer resumed on an old archive continues in the new place, so one attempt may have both).
   */
  async listRunning(loc: Location, signal?: AbortSignal): Promise<File[]> {
    return [
      ...(await this.listAll(loc.chunkPrefix, signal)),
      ...(await this.listAll(loc.legacyChunkPrefix, signal)),
    ];
  }

  async listChunks(loc: Location, signal?: AbortSignal): Promise<ChunkListing> {
    const all = await this.listRunning(loc, signal);
    const candidates: ChunkObject[] = [];
    let modifiedAt: Date | undefined;
    for (const file of all) {
      const updated = file.metadata.updated ? new Date(file.metadata.updated) : undefined;
      if (updated && (!modifiedAt || updated > modifiedAt)) modifiedAt = updated;
      const offset = parseChunkName(file.name.slice(file.name.lastIndexOf('/') + 1));
      if (offset !== undefined) candidates.push({ offset, size: Number(file.metadata.size), file });
    }
    const run = contiguousRun(candidates);
    return {
      chunks: run.chunks,
      committed: run.committed,
      discarded: run.discarded,
      all,
      modifiedAt,
    };
  }

  /**
   * Creates an object that must not exist yet (a chunk, the running marker). If it exists, a
   * retry of our own request may have created it: the same bytes are success, other bytes are
   * an IntegrityError.
   */
  async createIfMissing(object: string, data: Buffer, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    const file = this.bucket.file(object);
    try {
      await file.save(data, {
        resumable: false,
        contentType: CHUNK_CONTENT_TYPE,
        preconditionOpts: { ifGenerationMatch: 0 },
        validation: 'crc32c',
      });
      return;
    } catch (err) {
      if (statusOf(err) !== 412) throw this.error(err, 'write', object, signal);
    }
    const existing = await this.metadata(object, signal);
    const crc = new this.sdk.CRC32C();
    crc.update(data);
    if (!existing || Number(existing.size) !== data.length || existing.crc32c !== crc.toString()) {
      throw new IntegrityError(
        `${this.describe(object)} already exists with other bytes (${existing?.size} bytes, crc32c ${existing?.crc32c}); ` +
          `expected ${data.length} bytes with crc32c ${crc.toString()}`,
      );
    }
  }

  /** Deletes one object; a missing one is fine. */
  async deleteObject(
    object: string,
    generation: string | number | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    throwIfAborted(signal);
    try {
      await this.bucket
        .file(object)
        .delete({ ...(generation !== undefined ? { ifGenerationMatch: generation } : {}) });
    } catch (err) {
      if (isObjectMissing(err)) return;
      throw this.error(err, 'delete', object, signal);
    }
  }

  /** Deletes objects, a few at a time; missing ones are fine. */
  async deleteAll(files: readonly File[], signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < files.length; i += DELETE_CONCURRENCY) {
      const batch = files.slice(i, i + DELETE_CONCURRENCY);
      const ps = batch.map((f) => this.deleteObject(f.name, undefined, signal));
      await Promise.allSettled(ps);
      await Promise.all(ps);
    }
  }

  /** Bytes [from, to) of the log from a chunk; full reads are crc32c-checked by the SDK. */
  async *readChunk(
    chunk: ChunkObject,
    from: number,
    to: number,
    signal?: AbortSignal,
  ): AsyncGenerator<LogChunk> {
    const file = this.bucket.file(chunk.file.name, {
      generation: generationOf(chunk.file.metadata),
    });
    const whole = from === chunk.offset && to === chunk.offset + chunk.size;
    const stream = whole
      ? file.createReadStream({ validation: 'crc32c' })
      : file.createReadStream({
          start: from - chunk.offset,
          end: to - chunk.offset - 1,
          validation: false,
        });
    yield* this.#pieces(stream, from, to, chunk.file.name, signal);
  }

  /** Bytes [offset, end) of a finished log, decompressing a gzip-encoded one. */
  async *readFinal(
    object: string,
    meta: FileMetadata,
    offset: number,
    end: number | undefined,
    signal?: AbortSignal,
  ): AsyncGenerator<LogChunk> {
    const file = this.bucket.file(object, { generation: generationOf(meta) });
    const declared = declaredSize(meta);
    if (meta.contentEncoding !== 'gzip') {
      if (offset > declared) throw new OffsetOutOfRangeError(offset, declared);
      const stop = Math.min(end ?? declared, declared);
      if (offset >= stop) return;
      const stream =
        offset === 0 && stop === declared
          ? file.createReadStream({ validation: 'crc32c' })
          : file.createReadStream({ start: offset, end: stop - 1, validation: false });
      yield* this.#pieces(stream, offset, stop, object, signal);
      return;
    }
    // Decompressive transcoding: GCS would gunzip a gzip-encoded object for a client that does
    // not accept gzip, and then ignores Range. The SDK asks for the stored bytes and gunzips them
    // itself unless told not to; we take the raw bytes (crc32c-checked against the stored object)
    // and gunzip here, so offsets count uncompressed bytes exactly. There is no seeking inside
    // gzip: reading from offset N decompresses and drops N bytes first.
    const known = meta.metadata?.[META_SIZE] !== undefined;
    if (known && offset > declared) throw new OffsetOutOfRangeError(offset, declared);
    const raw = file.createReadStream({ validation: 'crc32c', decompress: false });
    const gunzip = createGunzip();
    pipeline(raw, gunzip).catch(() => undefined); // errors surface through `gunzip`
    let pos = 0;
    for await (const piece of this.#pieces(gunzip, 0, undefined, object, signal)) {
      const bytes = piece.bytes;
      const pieceEnd = pos + bytes.length;
      const from = Math.max(offset, pos);
      const to = end === undefined ? pieceEnd : Math.min(end, pieceEnd);
      if (to > from) yield { offset: from, bytes: bytes.subarray(from - pos, to - pos) };
      pos = pieceEnd;
      if (end !== undefined && pos >= end) return;
    }
    if (offset > pos) throw new OffsetOutOfRangeError(offset, pos);
    if (known && pos !== declared) {
      throw new IntegrityError(
        `${this.describe(object)} decompresses to ${pos} bytes, its metadata says ${declared}`,
      );
    }
  }

  /**
   * Asks a resumable session how far it got. The session URI itself authorizes the request
   * (https://cloud.google.com/storage/docs/performing-resumable-uploads#status-check), so plain
   * fetch suffices and honours the signal.
   */
  async sessionStatus(
    uri: string,
    object: string,
    signal?: AbortSignal,
  ): Promise<{ kind: 'active'; persisted: number } | { kind: 'complete' } | { kind: 'gone' }> {
    let res: Response;
    try {
      res = await fetch(uri, {
        method: 'PUT',
        headers: { 'Content-Range': 'bytes */*', 'Content-Length': '0' },
        signal,
      });
    } catch (err) {
      throw this.error(err, 'check the upload session of', object, signal);
    }
    await res.body?.cancel();
    if (res.status === 308) {
      const range = /^bytes=0-(\d+)$/.exec(res.headers.get('range') ?? '');
      return { kind: 'active', persisted: range ? Number(range[1]) + 1 : 0 };
    }
    if (res.status === 200 || res.status === 201) return { kind: 'complete' };
    if (res.status === 404 || res.status === 410) return { kind: 'gone' };
    throw this.error(
      Object.assign(new Error(`upload session answered HTTP ${res.status}`), { code: res.status }),
      'check the upload session of',
      object,
      signal,
    );
  }

  /** Composes sources into `dest`, at most 32 per call, through intermediates under `scratch`. */
  async compose(
    sources: File[],
    dest: string,
    scratch: string,
    signal?: AbortSignal,
  ): Promise<void> {
    let current = sources;
    for (let level = 0; current.length > COMPOSE_LIMIT; level++) {
      const next: File[] = [];
      for (let i = 0; i < current.length; i += COMPOSE_LIMIT) {
        throwIfAborted(signal);
        const name = `${scratch}compose-${level}-${i / COMPOSE_LIMIT}`;
        const inter = this.bucket.file(name);
        inter.metadata = { contentType: CHUNK_CONTENT_TYPE };
        try {
          // Deterministic name and sources: a retry or a leftover from a crash is overwritten
          // with the same bytes, so no precondition here.
          await this.bucket.combine(current.slice(i, i + COMPOSE_LIMIT), inter);
        } catch (err) {
          throw this.error(err, 'compose', name, signal);
        }
        next.push(this.bucket.file(name));
      }
      current = next;
    }
    throwIfAborted(signal);
    const target = this.bucket.file(dest);
    target.metadata = { contentType: LOG_CONTENT_TYPE };
    try {
      await this.bucket.combine(current, target, { ifGenerationMatch: 0 });
    } catch (err) {
      if (statusOf(err) === 412) throw new PreconditionFailed(dest, err);
      throw this.error(err, 'compose', dest, signal);
    }
  }

  /**
   * Sets `tasklog-size` and `tasklog-sha256` on a finished log that was just checked against them.
   * The patch is conditional on the generation and metageneration that were checked, so it never
   * lands on an object replaced or changed since (ConflictError then).
   */
  async stampVerified(
    object: string,
    checked: FileMetadata,
    expected: { size: number; sha256: string },
    signal?: AbortSignal,
  ): Promise<void> {
    throwIfAborted(signal);
    try {
      await this.bucket.file(object).setMetadata(
        { metadata: { [META_SIZE]: String(expected.size), [META_SHA256]: expected.sha256 } },
        {
          ifGenerationMatch: checked.generation,
          ifMetagenerationMatch: checked.metageneration,
        },
      );
    } catch (err) {
      if (statusOf(err) === 412) {
        // Our own patch may have landed on a try whose answer was lost (it bumps the
        // metageneration): the same generation now carrying this sha256 is that patch.
        const now = await this.metadata(object, signal);
        if (
          now &&
          String(now.generation) === String(checked.generation) &&
          now.metadata?.[META_SHA256] === expected.sha256
        ) {
          return;
        }
        throw new ConflictError(`${this.describe(object)} changed while it was being verified`, {
          cause: err,
        });
      }
      throw this.error(err, 'set metadata of', object, signal);
    }
  }

  /**
   * One resumable upload of the log `source()` yields (a finished file, or a writer's chunks) as
   * `object`, gzip-encoded when the store compresses. The session URI is saved in `journal` before
   * the first byte goes out; a later call with the same journal asks the session how far it got
   * and sends only the rest. The source is read from its start every time: the bytes the session
   * holds are not sent again, but the log's sha256 and the object's crc32c cover every byte. With
   * gzip the session holds compressed bytes; zlib with the same settings compresses the same input
   * to the same output, so the skipped prefix matches what was sent (the crc32c check catches the
   * case where it does not).
   *
   * The object is created with `tasklog-size` only; `tasklog-sha256` is patched on once its size
   * and crc32c match what the checked log compresses to. A new session is created with
   * ifGenerationMatch 0 (ConflictError if the log exists) or, with `replace`, the live generation.
   */
  async uploadResumable(
    object: string,
    source: () => Readable,
    expected: { size: number; sha256: string },
    options: {
      label: string;
      journal?: UploadJournal;
      signal?: AbortSignal;
      onProgress?: (done: number, total: number) => void;
      replace: boolean;
    },
  ): Promise<void> {
    const { journal, signal, onProgress, label } = options;
    const compression = this.store.compression;
    const target = this.bucket.file(object);
    const metadata: FileMetadata = {
      contentType: LOG_CONTENT_TYPE,
      ...(compression === 'gzip' ? { contentEncoding: 'gzip' } : { contentLength: expected.size }),
      metadata: { [META_SIZE]: String(expected.size) },
    };
    const saved = parseUploadState(await journal?.load());
    let state =
      saved &&
      saved.object === object &&
      saved.size === expected.size &&
      saved.sha256 === expected.sha256 &&
      saved.compression === compression
        ? saved
        : undefined;
    if (saved && !state) await this.cancelSession(saved.uri, signal);

    let persisted = 0;
    if (state) {
      const status = await this.sessionStatus(state.uri, object, signal);
      if (status.kind === 'complete') {
        // The session finished before a crash, perhaps before its check: the object is ours if
        // it holds exactly what the log compresses to.
        const meta = await this.metadata(object, signal);
        const sent = meta && (await this.#measure(source, expected, label, signal));
        if (meta && sent && Number(meta.size) === sent.size && meta.crc32c === sent.crc32c) {
          onProgress?.(expected.size, expected.size);
          if (meta.metadata?.[META_SHA256] !== expected.sha256) {
            await this.stampVerified(object, meta, expected, signal);
          }
          await journal?.save(null);
          return;
        }
        state = undefined;
      } else if (status.kind === 'gone') {
        state = undefined;
      } else {
        persisted = status.persisted;
      }
    }
    if (!state) {
      const live = await this.metadata(object, signal);
      if (live && !options.replace) {
        throw new ConflictError(`log ${this.describe(object)} is already complete`);
      }
      let uri: string;
      try {
        [uri] = await target.createResumableUpload({
          metadata,
          preconditionOpts: { ifGenerationMatch: live ? Number(live.generation) : 0 },
        });
      } catch (err) {
        if (statusOf(err) === 412) {
          throw new ConflictError(`log ${this.describe(object)} changed meanwhile`, {
            cause: err,
          });
        }
        throw this.error(err, 'start an upload of', object, signal);
      }
      state = { version: 1, object, uri, ...expected, compression };
      await journal?.save(state);
    }

    // Progress counts log bytes. A gzip session's offset counts compressed bytes, which do not
    // map back to log bytes up front: the first report then waits until the compressed stream
    // has passed what the session holds, and gives the log bytes read by then.
    const skip = new SkipAndCrc(persisted, this.sdk);
    const resumedGzip = compression === 'gzip' && persisted > 0;
    const resumedRaw = compression === 'none' ? persisted : 0;
    let reported = -1;
    const report = (n: number) => {
      reported = n;
      onProgress?.(n, expected.size);
    };
    if (!resumedGzip) report(resumedRaw);
    const verify = verifyingStream(expected.size, expected.sha256, label, (n) => {
      if (resumedGzip ? skip.total > persisted : n > resumedRaw) report(n);
    });
    const stages: (Readable | Transform | Writable)[] = [source(), verify];
    if (compression === 'gzip') stages.push(createGzip());
    stages.push(
      skip,
      target.createWriteStream({
        uri: state.uri,
        offset: persisted,
        resumable: true,
        chunkSize: this.store.uploadChunkSize,
        metadata,
        // The SDK can only check what it saw; a resumed upload is checked below instead.
        validation: persisted === 0 ? 'crc32c' : false,
      }),
    );
    try {
      await pipeline(stages, { signal });
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      if (statusOf(err) === 412) {
        throw new ConflictError(`log ${this.describe(object)} changed meanwhile`, { cause: err });
      }
      throw this.error(err, 'upload', object, signal);
    }
    const meta = target.metadata;
    if (Number(meta.size) !== skip.total || meta.crc32c !== skip.crc32c()) {
      await this.deleteObject(object, meta.generation, signal).catch(() => undefined);
      await journal?.save(null);
      throw new IntegrityError(
        `uploaded ${this.describe(object)} holds ${meta.size} bytes with crc32c ${meta.crc32c}, ` +
          `expected ${skip.total} bytes with crc32c ${skip.crc32c()}; object removed`,
      );
    }
    if (reported !== expected.size) report(expected.size);
    await this.stampVerified(object, meta, expected, signal);
    await journal?.save(null);
  }

  /** Size and crc32c of what uploading the log `source()` yields sends (compressed, for gzip). */
  async #measure(
    source: () => Readable,
    expected: { size: number; sha256: string },
    label: string,
    signal?: AbortSignal,
  ): Promise<{ size: number; crc32c: string }> {
    const crc = new SkipAndCrc(Number.POSITIVE_INFINITY, this.sdk);
    const stages: (Readable | Transform)[] = [
      source(),
      verifyingStream(expected.size, expected.sha256, label),
    ];
    if (this.store.compression === 'gzip') stages.push(createGzip());
    stages.push(crc);
    try {
      // The end of a pipeline run only to measure: it drops what it is given.
      const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
      await pipeline([...stages, sink], { signal });
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw this.error(err, 'read the log for', label, signal);
    }
    return { size: crc.total, crc32c: crc.crc32c() };
  }

  /**
   * Cancels a resumable upload session (best effort: one that finished or expired is fine).
   * https://cloud.google.com/storage/docs/performing-resumable-uploads#cancel-upload
   */
  async cancelSession(uri: string, signal?: AbortSignal): Promise<void> {
    try {
      const res = await fetch(uri, {
        method: 'DELETE',
        headers: { 'Content-Length': '0' },
        signal,
      });
      await res.body?.cancel();
    } catch {
      // Unreachable now: the session expires by itself within a week and holds no object.
    }
  }

  /**
   * Everything a killed writer or upload left beside a complete log: the objects under its chunk
   * prefix, and the session its journal names.
   */
  async sweepBeside(
    loc: Location,
    journal: UploadJournal | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.deleteAll(await this.listRunning(loc, signal), signal);
    const saved = parseUploadState(await journal?.load());
    if (saved && saved.object === loc.final) {
      await this.cancelSession(saved.uri, signal);
      await journal?.save(null);
    }
  }

  /** Yields a download stream's bytes as log pieces from `from`, checking it ends at `to`. */
  async *#pieces(
    stream: Readable,
    from: number,
    to: number | undefined,
    object: string,
    signal?: AbortSignal,
  ): AsyncGenerator<LogChunk> {
    const onAbort = () =>
      stream.destroy(new AbortedError('operation was aborted', { cause: signal?.reason }));
    signal?.addEventListener('abort', onAbort, { once: true });
    let pos = from;
    try {
      throwIfAborted(signal);
      for await (const buf of stream) {
        const bytes = buf as Buffer;
        if (bytes.length === 0) continue;
        yield { offset: pos, bytes };
        pos += bytes.length;
      }
    } catch (err) {
      throw this.error(err, 'read', object, signal);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      stream.destroy();
    }
    if (to !== undefined && pos !== to) {
      throw new IntegrityError(`${this.describe(object)} ended at byte ${pos}, expected ${to}`);
    }
  }
}

class PreconditionFailed extends Error {
  constructor(
    readonly object: string,
    cause: unknown,
  ) {
    super(`${object} already exists`, { cause });
  }
}

class GcsLogWriter implements LogWriter {
  #committed: number;
  readonly #buffer = new ChunkBuffer();
  #state: 'open' | 'finished' | 'aborted' = 'open';
  /** Operations run one at a time, in call order, even if a caller does not await each one. */
  #tail: Promise<unknown> = Promise.resolve();
  /** sha256 of every byte since offset 0, when this writer saw them all (it started at 0). */
  readonly #hash = createHash('sha256');
  readonly #sawAll: boolean;

  constructor(
    private readonly be: Backend,
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
   * Throws ConflictError after finish/abort. Once `flushBytes` are buffered, stores a chunk that
   * ends on the last line end (see ChunkBuffer); a failed auto-flush keeps the bytes buffered.
   */
  append(bytes: Uint8Array): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      if (bytes.length === 0) return;
      // Copied: callers may reuse their buffer as soon as append resolves.
      const copy = Buffer.from(bytes);
      this.#buffer.push(copy);
      if (this.#sawAll) this.#hash.update(copy);
      if (this.#buffer.size >= this.be.store.flushBytes) await this.#flushNow('lines');
    });
  }

  flush(): Promise<number> {
    return this.#serial(async () => {
      this.#assertOpen();
      return this.#flushNow();
    });
  }

  /**
   * Flushes, then makes the chunks the final object (compose, or a gzip upload) and removes them.
   * Throws IntegrityError (chunks kept), ConflictError, BackendUnavailableError.
   */
  finish(expected: { size: number; sha256: string }): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
        throw new InvalidInputError(`expected size must be an integer >= 0, got ${expected.size}`);
      }
      if (!/^[0-9a-fA-F]{64}$/.test(expected.sha256)) {
        throw new InvalidInputError('expected sha256 must be 64 hex digits');
      }
      const want = { size: expected.size, sha256: expected.sha256.toLowerCase() };
      await this.#flushNow();
      const { be, loc } = this;
      if (await be.metadata(loc.final)) {
        throw new ConflictError(`log ${be.describe(loc.final)} is already complete`);
      }
      const listing = await be.listChunks(loc);
      if (listing.committed !== want.size) {
        throw new IntegrityError(
          `log ${be.describe(loc.final)} holds ${listing.committed} bytes in chunks, expected ${want.size}; chunks kept`,
        );
      }
      if (this.#sawAll) {
        const sha256 = this.#hash.copy().digest('hex');
        if (sha256 !== want.sha256) throw shaMismatch(be, loc, sha256, want.sha256);
      }
      if (be.store.compression === 'gzip') await this.#uploadGzip(listing, want);
      else await this.#compose(listing, want);
      this.#state = 'finished';
      // The log is complete now. If removing the chunks fails, readers already prefer the final
      // object, and delete() / the next openWriter() remove them.
      await be.deleteAll(await be.listRunning(loc)).catch(() => undefined);
    });
  }

  async abort(): Promise<void> {
    if (this.#state === 'open') this.#state = 'aborted';
    this.#buffer.clear();
    await this.#tail.catch(() => undefined);
  }

  /** `all`: every buffered byte (flush, finish); `lines`: while full, up to the last line end. */
  async #flushNow(mode: 'all' | 'lines' = 'all'): Promise<number> {
    while (this.#buffer.size >= (mode === 'all' ? 1 : this.be.store.flushBytes)) {
      const data = this.#buffer.next(mode);
      if (data.length === 0) break; // only the first bytes of one character: wait for the rest
      await this.be.createIfMissing(this.loc.chunkPrefix + chunkName(this.#committed), data);
      this.#committed += data.length;
      this.#buffer.commit(data.length);
    }
    return this.#committed;
  }

  /**
   * Composes the chunks into the final object, checks it (size and crc32c against the chunks',
   * sha256 by reading it back when this writer did not see every byte), and only then sets
   * `tasklog-sha256`. Intermediate objects live under the chunk prefix and go with the chunks.
   */
  async #compose(listing: ChunkListing, want: { size: number; sha256: string }): Promise<void> {
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
            throw new ConflictError(`log ${be.describe(loc.final)} is already complete`, {
              cause: err,
            });
          }
          throw be.error(err, 'write', loc.final);
        });
      const empty = await be.metadata(loc.final);
      if (!empty)
        throw new NotFoundError(`${be.describe(loc.final)} vanished right after its write`);
      if (Number(empty.size) !== 0) {
        throw new ConflictError(`log ${be.describe(loc.final)} was written by someone else`);
      }
      await be.stampVerified(loc.final, empty, want);
      return;
    }
    const expectedCrc = combinedCrc32c(listing.chunks);
    try {
      await be.compose(
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
        throw new ConflictError(`log ${be.describe(loc.final)} is already complete`, {
          cause: err,
        });
      }
    }
    const meta = await be.metadata(loc.final);
    if (!meta) throw new NotFoundError(`${be.describe(loc.final)} vanished right after compose`);
    if (
      Number(meta.size) !== want.size ||
      (expectedCrc !== undefined && meta.crc32c !== expectedCrc)
    ) {
      await be.deleteObject(loc.final, meta.generation);
      throw new IntegrityError(
        `composed ${be.describe(loc.final)} holds ${meta.size} bytes with crc32c ${meta.crc32c}, ` +
          `its chunks ${want.size} bytes with crc32c ${expectedCrc}; object removed, chunks kept`,
      );
    }
    if (!this.#sawAll) {
      // A resumed writer never saw the first bytes: hash the composed object once, streamed.
      const hash = createHash('sha256');
      for await (const piece of be.readFinal(loc.final, meta, 0, undefined))
        hash.update(piece.bytes);
      const sha256 = hash.digest('hex');
      if (sha256 !== want.sha256) {
        await be.deleteObject(loc.final, meta.generation);
        throw shaMismatch(be, loc, sha256, want.sha256);
      }
    }
    await be.stampVerified(loc.final, meta, want);
  }

  /**
   * Streams the chunks through sha256 and gzip into one resumable upload, journaled, so the next
   * writer resumes one killed while finishing (see `Backend.uploadResumable`). The sha256 check
   * runs before the upload's last request goes out, so a mismatching log never becomes an object.
   */
  async #uploadGzip(listing: ChunkListing, want: { size: number; sha256: string }): Promise<void> {
    const { be, loc } = this;
    const chunks = listing.chunks;
    async function* source(): AsyncGenerator<Uint8Array> {
      for (const chunk of chunks) {
        for await (const piece of be.readChunk(chunk, chunk.offset, chunk.offset + chunk.size)) {
          yield piece.bytes;
        }
      }
    }
    await be.uploadResumable(loc.final, () => Readable.from(source()), want, {
      label: be.describe(loc.final),
      journal: this.journal,
      replace: false,
    });
  }

  #assertOpen(): void {
    if (this.#state !== 'open') {
      throw new ConflictError(
        `writer of ${this.be.describe(this.loc.final)} is already ${this.#state}`,
      );
    }
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(op, op);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

/**
 * Passes bytes through while counting and hashing them; fails the stream unless they are exactly
 * `size` bytes with `sha256`. It holds back the latest piece until that check passed, so the
 * upload behind it never receives its last byte (and never finalizes) for wrong content.
 */
function verifyingStream(
  size: number,
  sha256: string,
  label: string,
  onBytes?: (n: number) => void,
): Transform {
  const hash = createHash('sha256');
  let seen = 0;
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      seen += chunk.length;
      if (seen > size) {
        callback(new IntegrityError(`${label} has more than the expected ${size} bytes`));
        return;
      }
      onBytes?.(seen);
      const out = held;
      held = chunk;
      callback(null, out);
    },
    flush(callback) {
      const actual = hash.digest('hex');
      if (seen !== size || actual !== sha256) {
        callback(
          new IntegrityError(
            `${label} has ${seen} bytes with sha256 ${actual}, expected ${size} bytes with sha256 ${sha256}`,
          ),
        );
        return;
      }
      callback(null, held);
    },
  });
}

/**
 * Computes the crc32c of every byte of an upload and drops the first `skip` of them: the bytes a
 * resumed session already holds.
 */
class SkipAndCrc extends Transform {
  total = 0;
  readonly #crc: InstanceType<Sdk['CRC32C']>;

  constructor(
    private readonly skip: number,
    sdk: Sdk,
  ) {
    super();
    this.#crc = new sdk.CRC32C();
  }

  crc32c(): string {
    return this.#crc.toString();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.#crc.update(chunk);
    const start = this.total;
    this.total += chunk.length;
    if (this.total > this.skip) this.push(chunk.subarray(Math.max(0, this.skip - start)));
    callback();
  }
}

async function impersonatedClient(chain: readonly string[]) {
  const { GoogleAuth, Impersonated } = await import('google-auth-library');
  try {
    const sourceClient = await new GoogleAuth({
      scopes: ['https://www.googleapis.com/auth/cloud-platform'],
    }).getClient();
    return new Impersonated({
      sourceClient,
      targetPrincipal: chain[chain.length - 1]!,
      delegates: chain.slice(0, -1),
      targetScopes: ['https://www.googleapis.com/auth/devstorage.read_write'],
      lifetime: 3600,
    });
  } catch (err) {
    throw new BackendUnavailableError(
      `cannot get Application Default Credentials to impersonate ${chain[chain.length - 1]}: ` +
        `${err instanceof Error ? err.message : String(err)}; run \`gcloud auth application-default login\` ` +
        'or set GOOGLE_APPLICATION_CREDENTIALS',
      { cause: err },
    );
  }
}

function finalStat(meta: FileMetadata): LogStat {
  const sha256 = meta.metadata?.[META_SHA256];
  return {
    size: declaredSize(meta),
    complete: true,
    ...(typeof sha256 === 'string' ? { sha256 } : {}),
    ...(meta.updated ? { modifiedAt: new Date(meta.updated) } : {}),
  };
}

/** The log's uncompressed size: tasklog's metadata, else (an object Airflow wrote) its size. */
function declaredSize(meta: FileMetadata): number {
  return Number(meta.metadata?.[META_SIZE] ?? meta.size);
}

function generationOf(meta: FileMetadata): number | undefined {
  return meta.generation === undefined ? undefined : Number(meta.generation);
}

function shaMismatch(be: Backend, loc: Location, actual: string, expected: string): IntegrityError {
  return new IntegrityError(
    `log ${be.describe(loc.final)} has sha256 ${actual}, expected ${expected}; chunks kept`,
  );
}

/** crc32c of the chunks' concatenation, from their own crc32c values; undefined if one lacks it. */
function combinedCrc32c(chunks: readonly ChunkObject[]): string | undefined {
  let crc = 0;
  for (const chunk of chunks) {
    const b64 = chunk.file.metadata.crc32c;
    if (typeof b64 !== 'string') return undefined;
    const part = Buffer.from(b64, 'base64');
    if (part.length !== 4) return undefined;
    crc = crc32cCombine(crc, part.readUInt32BE(0), chunk.size);
  }
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc >>> 0, 0);
  return out.toString('base64');
}

/**
 * crc32c(A ‖ B) from crc32c(A), crc32c(B) and B's length: zlib's crc32_combine over GF(2),
 * with the Castagnoli polynomial. Lets finish() check a composed object without reading it.
 */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB <= 0) return crcA >>> 0;
  const times = (mat: Uint32Array, vec: number): number => {
    let sum = 0;
    for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i]!;
    return sum >>> 0;
  };
  const square = (out: Uint32Array, mat: Uint32Array) => {
    for (let n = 0; n < 32; n++) out[n] = times(mat, mat[n]!);
  };
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = 0x82f63b78;
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row >>> 0;
  square(even, odd); // two zero bits
  square(odd, even); // four zero bits
  let crc = crcA >>> 0;
  let len = lengthB;
  do {
    square(even, odd);
    if (len % 2 === 1) crc = times(even, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
    square(odd, even);
    if (len % 2 === 1) crc = times(odd, crc);
    len = Math.floor(len / 2);
  } while (len !== 0);
  return (crc ^ crcB) >>> 0;
}

function parseUploadState(value: unknown): UploadState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Partial<UploadState>;
  return v.version === 1 &&
    typeof v.object === 'string' &&
    typeof v.uri === 'string' &&
    typeof v.size === 'number' &&
    typeof v.sha256 === 'string' &&
    (v.compression === 'none' || v.compression === 'gzip')
    ? (v as UploadState)
    : undefined;
}

function positiveInt(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InvalidInputError(`GCS store ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** The HTTP status of an SDK error (ApiError `code`, gaxios `status` / `response.status`). */
function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; status?: unknown; response?: { status?: unknown } } | null;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.status === 'number') return e.status;
  if (typeof e?.response?.status === 'number') return e.response.status;
  return undefined;
}

function isBucketMissing(err: unknown): boolean {
  return (
    statusOf(err) === 404 &&
    /bucket does not exist|no such bucket|bucket.*not found/i.test(
      (err as Error | null)?.message ?? '',
    )
  );
}

function isObjectMissing(err: unknown): boolean {
  return statusOf(err) === 404 && !isBucketMissing(err);
}

/**
 * The one place SDK and network errors become tasklog errors. Messages name the bucket and the
 * object; the original error is always kept as `cause`.
 */
function gcsError(
  err: unknown,
  action: string,
  bucket: string,
  object: string | undefined,
  signal: AbortSignal | undefined,
): TasklogError {
  if (err instanceof TasklogError) return err;
  const where = object === undefined ? `bucket ${bucket}` : `gs://${bucket}/${object}`;
  if (signal?.aborted || (err as Error | null)?.name === 'AbortError') {
    return new AbortedError(`${action} ${where} was aborted`, { cause: err });
  }
  const status = statusOf(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (isBucketMissing(err)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: bucket ${bucket} does not exist`,
      {
        cause: err,
      },
    );
  }
  switch (status) {
    case 404:
      return new NotFoundError(`cannot ${action} ${where}: not found`, { cause: err });
    case 401:
    case 403:
      return new BackendUnavailableError(
        `cannot ${action} ${where}: permission denied (HTTP ${status}: ${detail}); check the ` +
          'Application Default Credentials and the impersonation chain, and that the acting ' +
          'account may use the bucket',
        { cause: err },
      );
    case 400:
      return new InvalidInputError(`cannot ${action} ${where}: ${detail}`, { cause: err });
    default:
      return new BackendUnavailableError(
        `cannot ${action} ${where}: ${status === undefined ? detail : `HTTP ${status}: ${detail}`}`,
        { cause: err },
      );
  }
}
