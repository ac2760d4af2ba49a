import { createReadStream } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { type AttemptKey, validateId } from '../../attempt-key.js';
import { AbortedError, InvalidInputError } from '../../errors.js';
import type { AttemptFilter } from '../../path-template.js';
import type { LocalLogFile, ReadOptions } from '../../store.js';

// Argument checks every store makes the same way, and how a store reads a local log it uploads.

/** The `{ size, sha256 }` given to `finish()`/`upload()`: InvalidInputError unless well-formed. */
export function validateExpected(expected: { size: number; sha256: string }): void {
  if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
    throw new InvalidInputError(`expected size must be an integer >= 0, got ${expected.size}`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(expected.sha256)) {
    throw new InvalidInputError('expected sha256 must be 64 hex digits');
  }
}

/** A list filter with every given field validated (InvalidInputError names the field). */
export function validateFilter(filter: AttemptFilter): AttemptFilter {
  const out: { -readonly [K in keyof AttemptKey]?: AttemptKey[K] } = {};
  if (filter.dagId !== undefined) out.dagId = validateId('dagId', filter.dagId);
  if (filter.runId !== undefined) out.runId = validateId('runId', filter.runId);
  if (filter.taskId !== undefined) out.taskId = validateId('taskId', filter.taskId);
  for (const field of ['mapIndex', 'tryNumber'] as const) {
    const v = filter[field];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < (field === 'mapIndex' ? -1 : 1)) {
      throw new InvalidInputError(`filter ${field} is out of range: ${v}`);
    }
    out[field] = v;
  }
  return out;
}

/** AbortedError (with the signal's reason as cause) once `signal` has aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError('operation was aborted', { cause: signal.reason });
}

/**
 * A finished local log's bytes from `start`: through the handle the shipper opened and checked
 * when it gave one (positional reads; the handle stays open, the path is never opened again),
 * else from the path.
 */
export function readLocalFile(
  file: LocalLogFile,
  options: { start?: number; highWaterMark?: number; signal?: AbortSignal } = {},
): Readable {
  const { start = 0, highWaterMark = 1 << 20, signal } = options;
  return file.handle
    ? file.handle.createReadStream({ start, highWaterMark, signal, autoClose: false })
    : createReadStream(file.path, { start, highWaterMark, signal });
}

/** The local log as a handle: the shipper's own (left open), or one opened from the path. */
export async function localFileHandle(
  file: LocalLogFile,
): Promise<{ fh: FileHandle; release: () => Promise<void> }> {
  if (file.handle) return { fh: file.handle, release: async () => {} };
  const fh = await open(file.path, 'r');
  return { fh, release: () => fh.close() };
}

/**
 * A `read()`'s options, checked: the byte range from `offset` (default 0) up to `end`
 * (exclusive), and the signal.
 */
export function checkReadRange(options: ReadOptions): {
  offset: number;
  end: number | undefined;
  signal: AbortSignal | undefined;
} {
  const offset = options.offset ?? 0;
  const end = options.end;
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new InvalidInputError(`read offset must be an integer >= 0, got ${offset}`);
  }
  if (end !== undefined && (!Number.isSafeInteger(end) || end < offset)) {
    throw new InvalidInputError(`read end must be an integer >= offset (${offset}), got ${end}`);
  }
  return { offset, end, signal: options.signal };
}
