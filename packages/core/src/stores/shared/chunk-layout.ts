import type { AttemptKey } from '../../attempt-key.js';
import type { AttemptFilter } from '../../path-template.js';

/**
 * A running attempt is a set of immutable chunks, each named by its start byte offset,
 * zero-padded to 20 digits so names sort in offset order (`chunkName`), in a folder or prefix of
 * its own. The local store keeps that folder at `<rel>.chunks/`, beside the log.
 */
export const CHUNKS_SUFFIX = '.chunks';

/**
 * Where S3 and GCS keep a running attempt: `<folder of the log>/.<log's file name>.chunks/`,
 * e.g. `logs/dag_id=d/run_id=r/task_id=t/.attempt=1.log.chunks/00000000000000000000.chunk`.
 * Its `running` marker (GCS), empty offset-0 chunk (S3) and compose intermediates live there too.
 *
 * It must lie outside the prefix Airflow reads: Airflow's S3 and GCS readers list every object
 * whose name *starts with* the attempt's key (`list_keys(prefix=key)`, `list_blobs(prefix=key)`)
 * and decode each one as the log, so chunks at `<key>.chunks/` were shown (or, cut inside a
 * character, failed the whole read); Airflow's own trigger logs `<key>.trigger.<id>.log` share
 * that prefix on purpose, so nothing of tasklog's may. A leading dot puts the folder beside the
 * log yet outside it. Chosen over a separate `prefix/.tasklog/…` tree because:
 * - `list()` stays one listing below the filter's prefix, which finds running and finished
 *   attempts of a folder together; a separate tree costs a second listing per call, and an
 *   unfiltered one would walk the tree twice.
 * - Lifecycle rules: a retention rule on `prefix/` (or a dag's folder) expires what a dead
 *   worker left together with the logs beside it; GCS rules can single chunks out with
 *   `matchesSuffix: [".chunk"]`. An S3 rule cannot select them by prefix, but expiring a running
 *   attempt's chunks early would lose its log anyway; `sweep()` removes leftovers of finished
 *   logs, which is what such a rule would be for.
 * - An operator browsing a task's folder (console, `aws s3 ls`, `gcloud storage ls`) sees the
 *   running attempt next to where its log will appear, as a dot folder most listings sort first.
 * Archives written before this layout keep chunks at `<key>.chunks/` (`legacyRunningPrefix`):
 * readers, `delete()`, `sweep()` and resumed writers take both places; new chunks go only here.
 */
export function runningPrefix(finalName: string): string {
  const slash = finalName.lastIndexOf('/');
  return `${finalName.slice(0, slash + 1)}.${finalName.slice(slash + 1)}${CHUNKS_SUFFIX}/`;
}

/** Where S3 and GCS kept a running attempt before `runningPrefix`: `<key>.chunks/`. */
export function legacyRunningPrefix(finalName: string): string {
  return `${finalName}${CHUNKS_SUFFIX}/`;
}

/**
 * The name of the log an object directly inside a running attempt's folder (`runningPrefix` or
 * `legacyRunningPrefix`) belongs to; `name` itself for anything else. Whether that names an
 * attempt at all is the path template's to say.
 */
export function logNameOf(name: string): string {
  const slash = name.lastIndexOf('/');
  if (slash <= 0 || slash === name.length - 1) return name;
  const folderAt = name.lastIndexOf('/', slash - 1) + 1;
  const folder = name.slice(folderAt, slash);
  if (!folder.endsWith(CHUNKS_SUFFIX) || folder.length === CHUNKS_SUFFIX.length) return name;
  const base = folder.slice(0, -CHUNKS_SUFFIX.length);
  if (base.startsWith('.') && base.length > 1) return name.slice(0, folderAt) + base.slice(1);
  return name.slice(0, slash - CHUNKS_SUFFIX.length);
}

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
