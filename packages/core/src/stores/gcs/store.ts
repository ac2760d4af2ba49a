import type { AttemptKey } from '../../attempt-key.js';
import { BackendUnavailableError, ConflictError, InvalidInputError } from '../../errors.js';
import type { AttemptFilter } from '../../path-template.js';
import type * as contract from '../../store.js';
import type { OpenStoreOptions } from '../registry.js';
import { ChunkedWriter } from '../shared/chunked-writer.js';
import { operation, streamOperation } from '../shared/operation.js';
import { checkReadRange, readLocalFile, validateFilter } from '../shared/store-checks.js';
import { Backend } from './client.js';
import { alreadyMapped } from './errors.js';
import { finalStat } from './final-object.js';
import {
  type Location,
  listAttempts,
  listChunks,
  listRunning,
  locate,
  RUNNING_MARKER,
} from './layout.js';
import { readLog } from './reads.js';
import { cancelJournaledSession } from './session.js';
import { type GcsStoreOptions, type ResolvedGcsOptions, resolveGcsOptions } from './settings.js';
import { GcsChunkSink } from './sink.js';
import { uploadResumable } from './upload.js';

export type { GcsStoreOptions } from './settings.js';

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
 *
 * Every SDK call maps its own failure (see `Backend`), where the action and the object are known;
 * the contract methods run under `operation` with `alreadyMapped`, which keeps those errors.
 */
export class GcsStore implements contract.LogStore {
  readonly url: string;
  readonly capabilities: contract.StoreCapabilities;
  readonly bucket: string;
  readonly prefix: string;
  /** The checked options with their defaults filled in. */
  readonly options: Readonly<ResolvedGcsOptions>;
  #backend: Promise<Backend> | undefined;

  constructor(options: GcsStoreOptions) {
    const o = resolveGcsOptions(options);
    this.options = o;
    this.bucket = o.bucket;
    this.prefix = o.prefix;
    this.capabilities = { liveAppend: true, seekableReads: o.compression !== 'gzip' };
    this.url = `gs://${o.bucket}${o.prefix ? `/${o.prefix}` : ''}`;
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
  openWriter(
    key: AttemptKey,
    options: contract.OpenWriterOptions = {},
  ): Promise<contract.LogWriter> {
    const { signal, journal } = options;
    return operation(signal, alreadyMapped, async () => {
      const loc = this.#locate(key);
      const be = await this.#connect();
      if (await be.metadata(loc.final, signal)) {
        // A writer died between composing the final object and removing its chunks.
        await sweepBeside(be, loc, journal, signal).catch(() => undefined);
        throw new ConflictError(`log ${be.describe(loc.final)} is already complete`);
      }
      await be.createIfMissing(loc.chunkPrefix + RUNNING_MARKER, Buffer.alloc(0), signal);
      const listing = await listChunks(be, loc, signal);
      // A resumed writer writes new chunks at those offsets and beyond; a stale chunk left there
      // could later look contiguous with different bytes, and would make its create fail (412).
      await be.deleteAll(
        listing.discarded.map((c) => c.file),
        signal,
      );
      return new ChunkedWriter(new GcsChunkSink(be, loc, journal), {
        committed: listing.committed,
        flushBytes: this.options.flushBytes,
        sha256: true,
      });
    });
  }

  /**
   * Stores a finished local file as the complete log with one resumable upload (see
   * `uploadResumable`): resumed from `journal` after a crash, checked before `tasklog-sha256` is
   * set. With `replace`, a complete log is replaced: the upload is created with
   * ifGenerationMatch of its current generation, and GCS swaps the object when the upload
   * finalizes, so readers see the old log until then. Throws ConflictError (complete without
   * `replace`, or changed meanwhile), IntegrityError, BackendUnavailableError, AbortedError.
   */
  upload(
    key: AttemptKey,
    file: contract.LocalLogFile,
    options: contract.UploadOptions = {},
  ): Promise<void> {
    const { signal, journal, onProgress } = options;
    return operation(signal, alreadyMapped, async () => {
      const loc = this.#locate(key);
      const be = await this.#connect();
      await uploadResumable(be, loc.final, () => readLocalFile(file), file, {
        label: file.path,
        journal,
        signal,
        onProgress,
        replace: options.replace === true,
      });
      await be.deleteAll(await listRunning(be, loc, signal), signal);
    });
  }

  /**
   * Streams the finished log, or else the committed chunks of a running attempt, from `offset`.
   * A gzip-encoded log is decompressed from its start (cost O(offset)). Throws NotFoundError,
   * OffsetOutOfRangeError, IntegrityError, InvalidInputError, AbortedError, BackendUnavailableError.
   */
  async *read(
    key: AttemptKey,
    options: contract.ReadOptions = {},
  ): AsyncGenerator<contract.LogChunk> {
    const { offset, end, signal } = checkReadRange(options);
    yield* streamOperation(signal, alreadyMapped, () => this.#readFrom(key, offset, end, signal));
  }

  /** Finished → complete; chunks → committed bytes, not complete; nothing → undefined. */
  stat(
    key: AttemptKey,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<contract.LogStat | undefined> {
    return operation(signal, alreadyMapped, async () => {
      const loc = this.#locate(key);
      const be = await this.#connect();
      const final = await be.metadata(loc.final, signal);
      if (final) return finalStat(final);
      const listing = await listChunks(be, loc, signal);
      if (listing.all.length === 0) {
        const late = await be.metadata(loc.final, signal);
        return late ? finalStat(late) : undefined;
      }
      return { size: listing.committed, complete: false, modifiedAt: listing.modifiedAt };
    });
  }

  /** Every finished or running attempt below the prefix matching every field given in `filter`. */
  async *list(
    filter: AttemptFilter,
    { signal }: contract.ListOptions = {},
  ): AsyncGenerator<AttemptKey> {
    const wanted = validateFilter(filter);
    yield* streamOperation(signal, alreadyMapped, () => this.#listFrom(wanted, signal));
  }

  /** Removes the finished log and every chunk object; a missing attempt is not an error. */
  delete(key: AttemptKey, { signal }: { signal?: AbortSignal } = {}): Promise<void> {
    return operation(signal, alreadyMapped, async () => {
      const loc = this.#locate(key);
      const be = await this.#connect();
      // Chunks first: a crash in between leaves the finished log, not a phantom running attempt.
      await be.deleteAll(await listRunning(be, loc, signal), signal);
      await be.deleteObject(loc.final, undefined, signal);
    });
  }

  /**
   * Removes what killed writers and uploads left beside a complete log: every object under its
   * chunk prefix (chunks, the `running` marker, compose intermediates), and cancels the resumable
   * upload session `options.journal` names. Nothing while the log is not complete (its chunks are
   * the log). Run it when no writer or upload of the attempt is at work. Throws
   * BackendUnavailableError, AbortedError.
   */
  sweep(key: AttemptKey, options: contract.SweepOptions = {}): Promise<void> {
    const { signal, journal } = options;
    return operation(signal, alreadyMapped, async () => {
      const loc = this.#locate(key);
      const be = await this.#connect();
      if (!(await be.metadata(loc.final, signal))) return;
      await sweepBeside(be, loc, journal, signal);
    });
  }

  /** Throws BackendUnavailableError unless the bucket exists and the credentials may see it. */
  ping({ signal }: { signal?: AbortSignal } = {}): Promise<void> {
    return operation(signal, alreadyMapped, async () => {
      const be = await this.#connect();
      let exists: boolean;
      try {
        [exists] = await be.bucket.exists();
      } catch (err) {
        throw be.error(err, 'check', undefined, signal);
      }
      if (!exists) throw new BackendUnavailableError(`bucket ${this.bucket} does not exist`);
    });
  }

  async close(): Promise<void> {
    // The SDK keeps no sockets open beyond Node's keep-alive agent, which does not hold the process.
  }

  async *#readFrom(
    key: AttemptKey,
    offset: number,
    end: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<contract.LogChunk> {
    const loc = this.#locate(key);
    yield* readLog(await this.#connect(), loc, offset, end, signal);
  }

  async *#listFrom(
    wanted: AttemptFilter,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<AttemptKey> {
    yield* listAttempts(
      await this.#connect(),
      this.prefix,
      this.options.pathTemplate,
      wanted,
      signal,
    );
  }

  #locate(key: AttemptKey): Location {
    return locate(this.prefix, this.options.pathTemplate, key);
  }

  #connect(): Promise<Backend> {
    this.#backend ??= Backend.connect(this.options);
    // A failed start (say, no credentials yet) must not stick: the next call tries again.
    this.#backend.catch(() => {
      this.#backend = undefined;
    });
    return this.#backend;
  }
}

/**
 * Everything a killed writer or upload left beside a complete log: the objects under its chunk
 * prefix, and the session its journal names.
 */
async function sweepBeside(
  be: Backend,
  loc: Location,
  journal: contract.UploadJournal | undefined,
  signal?: AbortSignal,
): Promise<void> {
  await be.deleteAll(await listRunning(be, loc, signal), signal);
  await cancelJournaledSession(loc.final, journal, signal);
}
