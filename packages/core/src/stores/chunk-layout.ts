import type { AttemptKey } from '../attempt-key.js';
import type { AttemptFilter } from '../path-template.js';

/**
 * The layout every blob store (local folder, S3, GCS) shares for a running attempt: beside the
 * finished log's name `<rel>`, a folder/prefix `<rel>.chunks/` of immutable chunks, each named by
 * its start byte offset, zero-padded to 20 digits so names sort in offset order.
 */
export const CHUNKS_SUFFIX = '.chunks';
const CHUNK_NAME = /^([0-9]{20})\.chunk$/;

export function chunkName(offset: number): string {
  return `${String(offset).padStart(20, '0')}.chunk`;
}

/** The start offset a chunk's name encodes, or undefined for anything that is not a chunk. */
export function parseChunkName(name: string): number | undefined {
  const m = CHUNK_NAME.exec(name);
  if (!m) return undefined;
  const offset = Number(m[1]);
  return Number.isSafeInteger(offset) ? offset : undefined;
}

export interface StoredChunk {
  offset: number;
  size: number;
}

/**
 * Only the contiguous run from byte 0 is the log: a chunk that does not start exactly where the
 * previous one ended (a gap, or an overlap left by two writers racing or by someone copying
 * files around) cannot be placed without guessing, so readers ignore it and the next writer
 * removes it. Empty chunks carry nothing and are discarded too.
 */
export function contiguousRun<T extends StoredChunk>(
  chunks: readonly T[],
): { chunks: T[]; committed: number; discarded: T[] } {
  const sorted = [...chunks].sort((a, b) => a.offset - b.offset);
  const run: T[] = [];
  const discarded: T[] = [];
  let committed = 0;
  for (const chunk of sorted) {
    if (chunk.offset === committed && chunk.size > 0) {
      run.push(chunk);
      committed += chunk.size;
    } else {
      discarded.push(chunk);
    }
  }
  return { chunks: run, committed, discarded };
}

/** Whether `key` has every field `filter` pins. */
export function matchesFilter(key: AttemptKey, filter: AttemptFilter): boolean {
  return (
    (filter.dagId === undefined || key.dagId === filter.dagId) &&
    (filter.runId === undefined || key.runId === filter.runId) &&
    (filter.taskId === undefined || key.taskId === filter.taskId) &&
    (filter.mapIndex === undefined || key.mapIndex === filter.mapIndex) &&
    (filter.tryNumber === undefined || key.tryNumber === filter.tryNumber)
  );
}
