import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import {
  access,
  type FileHandle,
  lstat,
  mkdir,
  open,
  opendir,
  readdir,
  rename,
  rm,
  stat,
} from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
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
import { assertRealPathInside, resolveInside } from '../../fs-paths.js';
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
  UploadOptions,
} from '../../store.js';
import { ChunkBuffer } from '../shared/chunk-buffer.js';
import {
  CHUNKS_SUFFIX,
  chunkName,
  contiguousRun,
  matchesFilter,
  parseChunkName,
} from '../shared/chunk-layout.js';
import { readLocalFile, throwIfAborted, validateFilter } from '../shared/store-checks.js';

export interface LocalStoreOptions {
  /** Absolute path of the archive folder (a local disk, NFS or a mounted volume). Created by the first writer. */
  root: string;
  /** Where each attempt's log lives below `root`; default Airflow's layout, so Airflow finds the files. */
  pathTemplate?: PathTemplate;
  /** Buffered bytes at which a writer flushes a chunk by itself; default 8 MiB. */
  chunkSize?: number;
}

const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;
/** Largest piece read() yields and the copy buffer of finish(). */
const READ_SIZE = 64 * 1024;
/**
 * Temp files are `.tmp-<name of the file they become>.<16 hex digits>`, beside that file: they
 * never match a path template (templates have no leading-dot segments) nor a chunk name, and
 * `sweep()` can tell one attempt's from another's.
 */
const TEMP_PREFIX = '.tmp-';
const TEMP_SUFFIX = /^\.[0-9a-f]{16}$/;
/** Longest file name most file systems take (NAME_MAX), in bytes. */
const NAME_MAX = 255;
const STAT_CONCURRENCY = 32;

interface Location {
  /** Relative path of the finished log, as the template renders it. */
  rel: string;
  /** Absolute path of the finished log. */
  final: string;
  /** Absolute path of the running attempt's chunk folder. */
  chunks: string;
}

interface ChunkFile {
  name: string;
  offset: number;
  size: number;
}

interface ChunkScan {
  /** The contiguous run of chunks starting at byte 0, in order. */
  chunks: ChunkFile[];
  /** Bytes covered by `chunks`. */
  committed: number;
  /** Chunk files outside that run. */
  discarded: string[];
  /** Leftover temp files of a writer that died mid-write. */
  temps: string[];
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
export class LocalStore implements LogStore {
  readonly url: string;
  readonly capabilities: StoreCapabilities = { liveAppend: true, seekableReads: true };
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
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
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
  async openWriter(key: AttemptKey, options: OpenWriterOptions = {}): Promise<LogWriter> {
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
      return new LocalLogWriter(this.root, loc, scan.committed, this.chunkSize);
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
  async upload(key: AttemptKey, file: LocalLogFile, options: UploadOptions = {}): Promise<void> {
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
   * in pieces of at most 64 KiB. Throws NotFoundError, OffsetOutOfRangeError, InvalidInputError
   * (also for a symlink leading out of the root), AbortedError, BackendUnavailableError.
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
  ): Promise<LogStat | undefined> {
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
  async *list(filter: AttemptFilter, options: ListOptions = {}): AsyncGenerator<AttemptKey> {
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
  async sweep(key: AttemptKey, options: SweepOptions = {}): Promise<void> {
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

class LocalLogWriter implements LogWriter {
  #committed: number;
  readonly #buffer = new ChunkBuffer();
  #state: 'open' | 'finished' | 'aborted' = 'open';
  /** Operations run one at a time, in call order, even if a caller does not await each one. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly root: string,
    private readonly loc: Location,
    committed: number,
    private readonly chunkSize: number,
  ) {
    this.#committed = committed;
  }

  get committedOffset(): number {
    return this.#committed;
  }

  get offset(): number {
    return this.#committed + this.#buffer.size;
  }

  /**
   * Throws ConflictError after finish/abort. Once `chunkSize` bytes are buffered, writes a chunk
   * that ends on the last line end (see ChunkBuffer); a failed auto-flush keeps the bytes buffered.
   */
  append(bytes: Uint8Array): Promise<void> {
    return this.#serial(async () => {
      this.#assertOpen();
      if (bytes.length === 0) return;
      // Copied: callers may reuse their buffer as soon as append resolves.
      this.#buffer.push(Buffer.from(bytes));
      if (this.#buffer.size >= this.chunkSize) await this.#flushNow('lines');
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
      if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
        throw new InvalidInputError(`expected size must be an integer >= 0, got ${expected.size}`);
      }
      if (!/^[0-9a-fA-F]{64}$/.test(expected.sha256)) {
        throw new InvalidInputError('expected sha256 must be 64 hex digits');
      }
      await this.#flushNow();
      try {
        await this.#assemble(expected.size, expected.sha256.toLowerCase());
      } catch (err) {
        throw fsError(err, this.loc.rel, 'finish');
      }
      this.#state = 'finished';
      // The log is complete once the rename is durable. If removing the chunks fails, readers
      // already prefer the final file, and delete() / the next openWriter() remove them.
      await rm(this.loc.chunks, { recursive: true, force: true }).catch(() => undefined);
    });
  }

  async abort(): Promise<void> {
    if (this.#state === 'open') this.#state = 'aborted';
    this.#buffer.clear();
    await this.#tail;
  }

  /** `all`: every buffered byte (flush, finish); `lines`: while full, up to the last line end. */
  async #flushNow(mode: 'all' | 'lines' = 'all'): Promise<number> {
    while (this.#buffer.size >= (mode === 'all' ? 1 : this.chunkSize)) {
      const data = this.#buffer.next(mode);
      if (data.length === 0) break; // only the first bytes of one character: wait for the rest
      try {
        // No mkdir here: if the chunk folder is gone the attempt was deleted, and recreating it
        // would publish a log missing its first bytes.
        await writeAtomic(this.loc.chunks, chunkName(this.#committed), data);
      } catch (err) {
        throw fsError(err, this.loc.rel, 'flush');
      }
      this.#committed += data.length;
      this.#buffer.commit(data.length);
    }
    return this.#committed;
  }

  /** Concatenates the chunks into the final file while hashing; IntegrityError on mismatch. */
  async #assemble(expectedSize: number, expectedSha256: string): Promise<void> {
    const { loc } = this;
    if (await exists(loc.final)) throw new ConflictError(`log ${loc.rel} is already complete`);
    const scan = await scanChunks(loc.chunks);
    const pieces = async function* () {
      for (const chunk of scan.chunks) {
        const src = await open(path.join(loc.chunks, chunk.name), 'r');
        try {
          yield* readRange(src, 0, 0, chunk.size, undefined);
        } finally {
          await src.close();
        }
      }
    };
    await publishFinal(this.root, loc, pieces(), { size: expectedSize, sha256: expectedSha256 });
  }

  #assertOpen(): void {
    if (this.#state !== 'open') {
      throw new ConflictError(`writer of ${this.loc.rel} is already ${this.#state}`);
    }
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(op, op);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

/**
 * Writes `pieces` as the finished log: into a temp file beside the final path while hashing,
 * and only if size and sha256 match `expected` is it fsynced and renamed into place, so the
 * final name never holds a partial or wrong log. Throws IntegrityError on a mismatch.
 */
async function publishFinal(
  root: string,
  loc: Location,
  pieces: AsyncIterable<LogChunk | Uint8Array>,
  expected: { size: number; sha256: string },
): Promise<void> {
  const folder = path.dirname(loc.final);
  await assertRealPathInside(root, folder);
  await mkdir(folder, { recursive: true });
  const temp = path.join(folder, tempName(path.basename(loc.final)));
  const out = await open(temp, 'wx');
  let renamed = false;
  try {
    const hash = createHash('sha256');
    let size = 0;
    for await (const piece of pieces) {
      const bytes = piece instanceof Uint8Array ? piece : piece.bytes;
      hash.update(bytes);
      await writeAll(out, bytes);
      size += bytes.length;
    }
    const sha256 = hash.digest('hex');
    if (size !== expected.size || sha256 !== expected.sha256) {
      throw new IntegrityError(
        `log ${loc.rel} holds ${size} bytes with sha256 ${sha256}, expected ${expected.size} bytes with sha256 ${expected.sha256}`,
      );
    }
    await out.sync();
    await out.close();
    await assertRealPathInside(root, folder);
    await rename(temp, loc.final);
    renamed = true;
    await syncDir(folder);
  } finally {
    await out.close().catch(() => undefined);
    if (!renamed) await rm(temp, { force: true });
  }
}

/**
 * Lists a chunk folder: the contiguous run from byte 0 (see `contiguousRun`), what lies outside
 * it, and temp files. Symlinks and foreign files are not chunks.
 */
async function scanChunks(dir: string): Promise<ChunkScan> {
  const entries = await readdir(dir, { withFileTypes: true });
  const temps: string[] = [];
  const candidates: { name: string; offset: number }[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith(TEMP_PREFIX)) {
      temps.push(entry.name);
      continue;
    }
    const offset = parseChunkName(entry.name);
    if (offset !== undefined && entry.isFile()) candidates.push({ name: entry.name, offset });
  }
  candidates.sort((a, b) => a.offset - b.offset);
  const sized: ChunkFile[] = [];
  for (let i = 0; i < candidates.length; i += STAT_CONCURRENCY) {
    const batch = candidates.slice(i, i + STAT_CONCURRENCY);
    const stats = await Promise.all(
      batch.map(async (c) => {
        try {
          return (await lstat(path.join(dir, c.name))).size;
        } catch (err) {
          if (isMissing(err)) return undefined;
          throw err;
        }
      }),
    );
    batch.forEach((c, j) => {
      const size = stats[j];
      if (size !== undefined) sized.push({ ...c, size });
    });
  }
  const run = contiguousRun(sized);
  return {
    chunks: run.chunks,
    committed: run.committed,
    discarded: run.discarded.map((c) => c.name),
    temps,
  };
}

async function* readWholeFile(
  fh: FileHandle,
  offset: number,
  end: number | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<LogChunk> {
  try {
    const size = (await fh.stat()).size;
    if (offset > size) throw new OffsetOutOfRangeError(offset, size);
    yield* readRange(fh, 0, offset, Math.min(end ?? size, size), signal);
  } finally {
    await fh.close();
  }
}

/** Yields bytes [from, to) of the log from a file whose first byte is log byte `base`. */
async function* readRange(
  fh: FileHandle,
  base: number,
  from: number,
  to: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<LogChunk> {
  let pos = from;
  while (pos < to) {
    throwIfAborted(signal);
    // A fresh buffer per piece: the consumer keeps the bytes we yield.
    const buf = Buffer.allocUnsafe(Math.min(READ_SIZE, to - pos));
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos - base);
    if (bytesRead === 0) {
      throw new IntegrityError(`stored file ended at byte ${pos}, before ${to}`);
    }
    yield { offset: pos, bytes: buf.subarray(0, bytesRead) };
    pos += bytesRead;
  }
}

async function writeAtomic(dir: string, name: string, data: Uint8Array): Promise<void> {
  const temp = path.join(dir, tempName(name));
  const fh = await open(temp, 'wx');
  let renamed = false;
  try {
    await writeAll(fh, data);
    await fh.sync();
    await fh.close();
    await rename(temp, path.join(dir, name));
    renamed = true;
    await syncDir(dir);
  } finally {
    await fh.close().catch(() => undefined);
    if (!renamed) await rm(temp, { force: true });
  }
}

async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, null);
    done += bytesWritten;
  }
}

/** Makes a rename or a new entry in `dir` durable. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    // Some platforms (Windows) and file systems cannot fsync a folder; nothing more to do there.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'ENOTSUP') {
      throw err;
    }
  } finally {
    await fh?.close();
  }
}

async function statFinal(file: string): Promise<LogStat | undefined> {
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

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

/** A fresh temp name for a file that will become `name` (see TEMP_PREFIX). */
function tempName(name: string): string {
  return `${tempStem(name)}.${randomBytes(8).toString('hex')}`;
}

/** Whether `entry` is a temp file of the file `name`. */
function isTempOf(entry: string, name: string): boolean {
  const stem = tempStem(name);
  return entry.startsWith(stem) && TEMP_SUFFIX.test(entry.slice(stem.length));
}

/**
 * `.tmp-<name>`; for a name too long for that within NAME_MAX, `.tmp-<sha256 of the name>`, so a
 * temp name always fits and still names its file.
 */
function tempStem(name: string): string {
  const plain = `${TEMP_PREFIX}${name}`;
  if (Buffer.byteLength(plain) + 17 <= NAME_MAX) return plain;
  return `${TEMP_PREFIX}${createHash('sha256').update(name).digest('hex')}`;
}

function relativeTo(root: string, full: string): string {
  return path.relative(root, full).split(path.sep).join('/');
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The one place file system errors become tasklog errors; `rel` is relative to the root. */
function fsError(err: unknown, rel: string, action: string): TasklogError {
  if (err instanceof TasklogError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = `cannot ${action} ${rel}: ${code ?? (err instanceof Error ? err.message : String(err))}`;
  switch (code) {
    case 'ENOENT':
      return new NotFoundError(message, { cause: err });
    case 'ABORT_ERR':
      return new AbortedError(message, { cause: err });
    case 'ENAMETOOLONG':
    case 'EINVAL':
      return new InvalidInputError(message, { cause: err });
    default:
      return new BackendUnavailableError(message, { cause: err });
  }
}
