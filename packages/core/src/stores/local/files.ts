import { createHash, randomBytes } from 'node:crypto';
import { type FileHandle, lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  AbortedError,
  BackendUnavailableError,
  IntegrityError,
  InvalidInputError,
  NotFoundError,
  TasklogError,
} from '../../errors.js';
import { assertRealPathInside } from '../../fs-paths.js';
import type { LogChunk } from '../../store.js';
import { contiguousRun, parseChunkName } from '../shared/chunk-layout.js';
import { throwIfAborted } from '../shared/store-checks.js';

// How the local store touches the disk: files that appear atomically, the chunk folder's scan,
// ranged reads, and the mapping of file system errors.

/** Largest piece read() yields and the copy buffer of finish(). */
export const READ_SIZE = 1024 * 1024;
/**
 * Temp files are `.tmp-<name of the file they become>.<16 hex digits>`, beside that file: they
 * never match a path template (templates have no leading-dot segments) nor a chunk name, and
 * `sweep()` can tell one attempt's from another's.
 */
export const TEMP_PREFIX = '.tmp-';
const TEMP_SUFFIX = /^\.[0-9a-f]{16}$/;
/** Longest file name most file systems take (NAME_MAX), in bytes. */
const NAME_MAX = 255;
const STAT_CONCURRENCY = 32;

export interface Location {
  /** Relative path of the finished log, as the template renders it. */
  rel: string;
  /** Absolute path of the finished log. */
  final: string;
  /** Absolute path of the running attempt's chunk folder. */
  chunks: string;
}

export interface ChunkFile {
  name: string;
  offset: number;
  size: number;
}

export interface ChunkScan {
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
 * Writes `pieces` as the finished log: into a temp file beside the final path while hashing,
 * and only if size and sha256 match `expected` is it fsynced and renamed into place, so the
 * final name never holds a partial or wrong log. Throws IntegrityError on a mismatch.
 */
export async function publishFinal(
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
export async function scanChunks(dir: string): Promise<ChunkScan> {
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

/**
 * Yields bytes [from, to) of the log from a file whose first byte is log byte `base`. The next
 * piece is read while the consumer handles the current one, so the disk and the consumer (a
 * socket, mostly) work at the same time.
 */
export async function* readRange(
  fh: FileHandle,
  base: number,
  from: number,
  to: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<LogChunk> {
  const readAt = async (pos: number): Promise<LogChunk> => {
    // A fresh buffer per piece: the consumer keeps the bytes we yield.
    const buf = Buffer.allocUnsafe(Math.min(READ_SIZE, to - pos));
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos - base);
    if (bytesRead === 0) {
      throw new IntegrityError(`stored file ended at byte ${pos}, before ${to}`);
    }
    return { offset: pos, bytes: buf.subarray(0, bytesRead) };
  };
  let pending: Promise<LogChunk> | undefined;
  try {
    let pos = from;
    if (pos < to) pending = readAt(pos);
    while (pending) {
      throwIfAborted(signal);
      const piece = await pending;
      pos += piece.bytes.length;
      pending = pos < to ? readAt(pos) : undefined;
      yield piece;
    }
  } finally {
    // A consumer that stopped early leaves one read in flight; its outcome no longer matters.
    pending?.catch(() => {});
  }
}

export async function writeAtomic(dir: string, name: string, data: Uint8Array): Promise<void> {
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
export async function syncDir(dir: string): Promise<void> {
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

export async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

/** A fresh temp name for a file that will become `name` (see TEMP_PREFIX). */
export function tempName(name: string): string {
  return `${tempStem(name)}.${randomBytes(8).toString('hex')}`;
}

/** Whether `entry` is a temp file of the file `name`. */
export function isTempOf(entry: string, name: string): boolean {
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

export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The one place file system errors become tasklog errors; `rel` is relative to the root. */
export function fsError(err: unknown, rel: string, action: string): TasklogError {
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
