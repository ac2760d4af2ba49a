import { randomBytes } from 'node:crypto';
import type { AttemptKey } from '../../attempt-key.js';
import type { LogCalls } from './calls.js';
import { attemptLabels, L, markerEntry } from './entries.js';
import { attemptFilter, parseEntry } from './reads.js';

// Cloud Logging cannot delete single entries (DeleteLog drops the whole log, every attempt), so
// a deleted attempt is marked by a tombstone entry (`tasklog_deleted=true`); readers ignore
// everything of the attempt up to its newest tombstone. The entries stay until the bucket's
// retention ends.

/** Newest tombstone of the attempt in µs, or undefined. */
export async function latestTombstone(
  calls: LogCalls,
  key: AttemptKey,
  signal: AbortSignal | undefined,
): Promise<number | undefined> {
  const page = await calls.page(
    attemptFilter(calls.logName, key, undefined, `labels.${L.deleted}="true"`),
    'timestamp desc',
    1,
    undefined,
    signal,
  );
  const item = page.entries.map((e) => parseEntry(e, key)).find((p) => p?.kind === 'tombstone');
  return item?.micros;
}

/** Writes a tombstone at `micros` (µs), which the caller makes newer than the attempt's newest entry. */
export async function writeTombstone(
  calls: LogCalls,
  key: AttemptKey,
  micros: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const entry = markerEntry(attemptLabels(key, {}), micros, randomBytes(12).toString('hex'), {
    [L.deleted]: 'true',
  });
  await calls.write([entry], signal);
}
