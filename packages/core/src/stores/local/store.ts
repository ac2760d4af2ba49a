import { constants } from 'node:fs';
import {
  access,
  type FileHandle,
  lstat,
  mkdir,
  open,
  opendir,
  readdir,
  rm,
  stat,
} from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import {
  BackendUnavailableError,
  ConflictError,
  InvalidInputError,
  NotFoundError,
  OffsetOutOfRangeError,
  TasklogError,
} from '../../errors.js';
import { assertRealPathInside, resolveInside } from '../../fs-paths.js';
import { type AttemptFilter, PathTemplate } from '../../path-template.js';
import type * as contract from '../../store.js';
import { DEFAULT_FLUSH_BYTES } from '../shared/chunk-buffer.js';
import { CHUNKS_SUFFIX, matchesFilter } from '../shared/chunk-layout.js';
import { ChunkedWriter } from '../shared/chunked-writer.js';
import {
  checkReadRange,
  readLocalFile,
  throwIfAborted,
  validateFilter,
} from '../shared/store-checks.js';
import {
  type ChunkScan,
  exists,
  fsError,
  isMissing,
  isTempOf,
  type Location,
  publishFinal,
  READ_SIZE,
  readRange,
  scanChunks,
  syncDir,
  TEMP_PREFIX,
} from './files.js';
import { LocalChunkSink } from './sink.js';

export interface LocalStoreOptions {
  /** Absolute path of the archive folder (a local disk, NFS or a mounted volume). Created by the first writer. */
  root: string;
  /** Where each attempt's log lives below `root`; default Airflow's layout, so Airflow finds the files. */
  pathTemplate?: PathTemplate;
  /** Buffered bytes at which a writer flushes a chunk by itself; default 8 MiB. */
  chunkSize?: number;
}

/**
 * The `file://` archive: a folder, laid out like Airflow's own log folder.
 *
 * - A finished log is one file at `<root>/<relative path>`.
 * - A running attempt is a folder `<root>/<relative path>.chunks/` of immutable chunk files, each
 *   named by its start byte offset (`00000000000000000000.chunk`). A writer that dies leaves
 *   everything up to its last flush; a new writer resumes after the last contiguous chunk.
 * - Every file appears atomically (temp file, fsync, rename, fsync of the folder), so readers
 *   never see a partial file. A process killed mid-write leaves its temp file (named after the
 *   file it was to become); the next writer removes those in the chunk folder, `sweep()` those
 *   beside a finished log.
 */
export class LocalStore implements contract.LogStore {
  readonly url: string;
  readonly capabilities: contract.StoreCapabilities = { liveAppend: true, seekableReads: true };
  readonly root: string;
  readonly pathTemplate: PathTemplate;
  readonly chunkSize: number;

  constructor(options: LocalStoreOptions) {
    if (typeof options.root !== 'string' || !path.isAbsolute(options.root)) {
      throw new InvalidInputError(
        `local store root must be an absolute path, got ${JSON.stringify(options.root)}`,
      );
    }
    if (options.root.includes('\u0000')) {
      throw new InvalidInputError('local store root must not contain NUL');
    }
    const chunkSize = options.chunkSize ?? DEFAULT_FLUSH_BYTES;
    if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) {
      throw new InvalidInputError(
        `local store chunkSize must be a positive integer, got ${chunkSize}`,
      );
    }
    this.root = path.resolve(options.root);
    this.pathTemplate = options.pathTemplate ?? new PathTemplate();
    this.chunkSize = chunkSize;
    this.url = pathToFileURL(this.root).href;
  }

  /** `file:///abs/path` (host empty or `localhost`). Throws InvalidInputError for anything else. */
  static fromUrl(url: string, options: Omit<LocalStoreOptions, 'root'> = {}): LocalStore {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (err) {
      throw new InvalidInputError('local store URL is not a valid URL', { cause: err });
    }
    if (parsed.protocol !== 'file:') {
      throw new InvalidInputError(
        `local store URL must start with file://, got scheme ${parsed.protocol}`,
      );
    }
    if (parsed.host !== '' && parsed.host !== 'localhost') {
      throw new InvalidInputError(
        `local store URL must name a local folder (file:///abs/path), got host ${parsed.host}`,
      );
    }
    if (parsed.search || parsed.hash) {
      throw new InvalidInputError('local store URL must not have a query or fragment');
    }
    let root: string;
    try {
      root = fileURLToPath(parsed);
    } catch (err) {
      throw new InvalidInputError('local store URL does not name a folder', { cause: err });
    }
    return new LocalStore({ ...options, root });
  }

  /** Throws ConflictError when the log is already finished; InvalidInputError, BackendUnavailableError. */
  async openWriter(
    key: AttemptKey,
    options: contract.OpenWriterOptions = {},
  ): Promise<contract.LogWriter> {
    throwIfAborted(options.signal);
    const loc = this.#locate(key);
    try {
      await mkdir(this.root, { recursive: true });
      await assertRealPathInside(this.root, loc.chunks);
      if (await exists(loc.final)) {
        // A writer crashed between renaming the final file and removing its chunks.
        await rm(loc.chunks, { recursive: true, force: true });
        throw new ConflictError(`log ${loc.rel} is already complete`);
      }
      await mkdir(loc.chunks, { recursive: true });
      // Checked again now that the folder exists: a symlink may have been planted meanwhile.
      await assertRealPathInside(this.root, loc.chunks);
      await syncDir(path.dirname(loc.chunks));
      const scan = await scanChunks(loc.chunks);
      // Discarded chunks must go: a resumed writer will write new chunks at those offsets and
      // beyond, and a stale chunk left there could later look contiguous with different bytes.
      for (const name of [...scan.temps, ...scan.discarded]) {
        await rm(path.join(loc.chunks, name), { force: true });
      }
      return new ChunkedWriter(new LocalChunkSink(this.root, loc), {
        committed: scan.committed,
        flushBytes: this.chunkSize,
        sha256: false,
      });
    } catch (err) {
      throw fsError(err, loc.rel, 'open writer for');
    }
  }

  /**
   * Copies a finished local file in as the complete log (temp file, hash check, fsync, rename):
   * one pass instead of chunks plus a concatenation. Nothing to resume: a crash leaves at most a
   * temp file (removed by `sweep()`), and a retry starts over. With `replace`, a complete log is
   * replaced by the rename, atomically. Throws ConflictError if the log is already complete
   * (without `replace`), IntegrityError if the file does not match its size and sha256.
   */
  async upload(
    key: AttemptKey,
    file: contract.LocalLogFile,
    options: contract.UploadOptions = {},
  ): Promise<void> {
    const { signal, onProgress } = options;
    throwIfAborted(signal);
    const loc = this.#locate(key);
    try {
      await mkdir(this.root, { recursive: true });
      if (!options.replace && (await exists(loc.final))) {
        throw new ConflictError(`log ${loc.rel} is already complete`);
      }
      let done = 0;
      onProgress?.(0, file.size);
      const pieces = async function* () {
        for await (const piece of readLocalFile(file, { highWaterMark: READ_SIZE * 16, signal })) {
          done += (piece as Buffer).length;
          onProgress?.(done, file.size);
          yield piece as Buffer;
        }
      };
      await publishFinal(this.root, loc, pieces(), file);
      await rm(loc.chunks, { recursive: true, force: true });
    } catch (err) {
      throw fsError(err, loc.rel, 'upload');
    }
  }

  /**
   * Streams the finished log, or else the committed chunks of a running attempt, from `offset`
   * in pieces of at most 1 MiB, reading the next while the consumer takes the current one.
   * Throws NotFoundError, OffsetOutOfRangeError, InvalidInputError (also for a symlink leading
   * out of the root), AbortedError, BackendUnavailableError.
   */
  async *read(
    key: AttemptKey,
    options: contract.ReadOptions = {},
  ): AsyncGenerator<contract.LogChunk> {
    const { offset, end, signal } = checkReadRange(options);
    throwIfAborted(signal);
    const loc = this.#locate(key);
    try {
      await this.#assertInside(loc);
      const final = await openIfExists(loc.final);
      if (final) {
        yield* readWholeFile(final, offset, end, signal);
        return;
      }
      let scan: ChunkScan;
      try {
        scan = await scanChunks(loc.chunks);
      } catch (err) {
        if (!isMissing(err)) throw err;
        // The writer may have finished between our two looks.
        const late = await openIfExists(loc.final);
        if (late) {
          yield* readWholeFile(late, offset, end, signal);
          return;
        }
        throw new NotFoundError(`no log stored for ${loc.rel}`, { cause: err });
      }
      const size = scan.committed;
      if (offset > size) throw new OffsetOutOfRangeError(offset, size);
      const stop = Math.min(end ?? size, size);
      let pos = offset;
      for (const chunk of scan.chunks) {
        const chunkEnd = chunk.offset + chunk.size;
        if (pos >= stop) break;
        if (chunkEnd <= pos) continue;
        let fh: FileHandle;
        try {
          fh = await open(path.join(loc.chunks, chunk.name), 'r');
        } catch (err) {
          if (!isMissing(err)) throw err;
          // A writer finished and removed its chunks; the final file holds the same bytes at
          // the same offsets, so the reader carries on there without a gap or a repeat.
          const finished = await openIfExists(loc.final);
          if (!finished) throw new NotFoundError(`log ${loc.rel} vanished while being read`);
          try {
            yield* readRange(finished, 0, pos, stop, signal);
          } finally {
            await finished.close();
          }
          return;
        }
        try {
          for await (const piece of readRange(
            fh,
            chunk.offset,
            pos,
            Math.min(stop, chunkEnd),
            signal,
          )) {
            pos += piece.bytes.length;
            yield piece;
          }
        } finally {
          await fh.close();
        }
      }
    } catch (err) {
      throw fsError(err, loc.rel, 'read');
    }
  }

  /** Finished → complete; chunk folder → committed bytes, not complete; nothing → undefined. */
  async stat(
    key: AttemptKey,
    options: { signal?: AbortSignal } = {},
  ): Promise<contract.LogStat | undefined> {
    throwIfAborted(options.signal);
    const loc = this.#locate(key);
    try {
      await this.#assertInside(loc);
      const finished = await statFinal(loc.final);
      if (finished) return finished;
      let folder: Awaited<ReturnType<typeof lstat>>;
      let scan: ChunkScan;
      try {
        folder = await lstat(loc.chunks);
        if (!folder.isDirectory()) return undefined;
        scan = await scanChunks(loc.chunks);
      } catch (err) {
        if (!isMissing(err)) throw err;
        return await statFinal(loc.final);
      }
      return { size: scan.committed, complete: false, modifiedAt: folder.mtime };
    } catch (err) {
      if (err instanceof NotFoundError) return undefined; // the root itself is missing
      throw fsError(err, loc.rel, 'stat');
    }
  }

  /** Every finished or running attempt below the root matching every field given in `filter`. */
  async *list(
    filter: AttemptFilter,
    options: contract.ListOptions = {},
  ): AsyncGenerator<AttemptKey> {
    const wanted = validateFilter(filter);
    const prefix = this.pathTemplate.prefix(wanted);
    const start = prefix ? resolveInside(this.root, prefix) : this.root;
    try {
      if (prefix) await assertRealPathInside(this.root, start);
    } catch (err) {
      if (err instanceof NotFoundError) return;
      throw err;
    }
    yield* this.#walk(start, wanted, options.signal);
  }

  /** Removes the finished log and any chunks; a missing attempt is not an error. */
  async delete(key: AttemptKey, options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    const loc = this.#locate(key);
    try {
      await this.#assertInside(loc);
      // Chunks first: a crash in between leaves the finished log, not a phantom running attempt.
      await rm(loc.chunks, { recursive: true, force: true });
      await rm(loc.final, { force: true });
    } catch (err) {
      if (err instanceof NotFoundError) return; // the root itself is missing
      throw fsError(err, loc.rel, 'delete');
    }
  }

  /**
   * Removes what killed writers and uploads left beside a finished log: its chunk folder and the
   * attempt's temp files (`.tmp-<log file name>.<random>`, beside the log). Nothing for an attempt
   * that is not finished (its chunks are the log). Run it when no writer or upload of the attempt
   * is at work: a temp file being written would be removed under it. Throws InvalidInputError,
   * BackendUnavailableError.
   */
  async sweep(key: AttemptKey, options: contract.SweepOptions = {}): Promise<void> {
    throwIfAborted(options.signal);
    const loc = this.#locate(key);
    try {
      await this.#assertInside(loc);
      if (!(await statFinal(loc.final))) return;
      await rm(loc.chunks, { recursive: true, force: true });
      const folder = path.dirname(loc.final);
      const name = path.basename(loc.final);
      for (const entry of await readdir(folder)) {
        throwIfAborted(options.signal);
        if (isTempOf(entry, name)) await rm(path.join(folder, entry), { force: true });
      }
    } catch (err) {
      if (err instanceof NotFoundError) return; // the root itself is missing
      throw fsError(err, loc.rel, 'sweep');
    }
  }

  /** Throws BackendUnavailableError unless the root is an existing, readable folder. */
  async ping(options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    try {
      const s = await stat(this.root);
      if (!s.isDirectory())
        throw new BackendUnavailableError(`store root ${this.root} is not a folder`);
      await access(this.root, constants.R_OK | constants.X_OK);
    } catch (err) {
      if (err instanceof TasklogError) throw err;
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      // An unmounted volume shows up as a missing root; for a health check that is "unavailable".
      throw new BackendUnavailableError(`store root ${this.root} is not usable: ${code}`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {}

  #locate(key: AttemptKey): Location {
    const rel = this.pathTemplate.render(attemptKey(key));
    const final = resolveInside(this.root, rel);
    return { rel, final, chunks: `${final}${CHUNKS_SUFFIX}` };
  }

  async #assertInside(loc: Location): Promise<void> {
    await assertRealPathInside(this.root, loc.final);
    await assertRealPathInside(this.root, loc.chunks);
  }

  async *#walk(
    dir: string,
    filter: AttemptFilter,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<AttemptKey> {
    let handle: Awaited<ReturnType<typeof opendir>>;
    try {
      handle = await opendir(dir);
    } catch (err) {
      if (isMissing(err)) return;
      throw fsError(err, relativeTo(this.root, dir), 'list');
    }
    // A finished log and its leftover chunk folder are siblings, so de-duplicating per folder
    // is enough and keeps memory bounded by the widest folder, not the whole archive.
    const seen = new Set<string>();
    const subfolders: string[] = [];
    try {
      // Dirent types come from lstat semantics: symlinks are neither files nor folders here,
      // so the walk never follows one out of the root.
      for await (const entry of handle) {
        throwIfAborted(signal);
        if (entry.name.startsWith(TEMP_PREFIX)) continue;
        const full = path.join(dir, entry.name);
        const rel = relativeTo(this.root, full);
        let attemptRel: string | undefined;
        if (entry.isFile()) attemptRel = rel;
        else if (entry.isDirectory() && rel.endsWith(CHUNKS_SUFFIX)) {
          attemptRel = rel.slice(0, -CHUNKS_SUFFIX.length);
        }
        const key = attemptRel === undefined ? undefined : this.#keyAt(attemptRel);
        if (key) {
          if (!seen.has(attemptRel!) && matchesFilter(key, filter)) {
            seen.add(attemptRel!);
            yield key;
          }
        } else if (entry.isDirectory()) {
          subfolders.push(full);
        }
      }
    } catch (err) {
      throw fsError(err, relativeTo(this.root, dir), 'list');
    }
    for (const sub of subfolders) yield* this.#walk(sub, filter, signal);
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
}

async function* readWholeFile(
  fh: FileHandle,
  offset: number,
  end: number | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<contract.LogChunk> {
  try {
    const size = (await fh.stat()).size;
    if (offset > size) throw new OffsetOutOfRangeError(offset, size);
    yield* readRange(fh, 0, offset, Math.min(end ?? size, size), signal);
  } finally {
    await fh.close();
  }
}

async function statFinal(file: string): Promise<contract.LogStat | undefined> {
  try {
    const s = await lstat(file);
    if (!s.isFile()) return undefined;
    return { size: s.size, complete: true, modifiedAt: s.mtime };
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

async function openIfExists(file: string): Promise<FileHandle | undefined> {
  try {
    return await open(file, 'r');
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

function relativeTo(root: string, full: string): string {
  return path.relative(root, full).split(path.sep).join('/');
}
