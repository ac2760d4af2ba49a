import { createHash, type Hash } from 'node:crypto';
import type { AttemptKey } from '../../attempt-key.js';
import { ConflictError } from '../../errors.js';
import type { LogWriter } from '../../store.js';
import { RecordAssembler } from '../shared/log-records.js';
import { RecordWriter } from '../shared/record-writer.js';
import type { LogCalls } from './calls.js';
import { attemptLabels, EntryCutter, insertId, L, markerEntry } from './entries.js';
import type { LogicalDates } from './logical-date.js';
import { attemptEntries } from './reads.js';
import type { ResolvedCloudLoggingOptions } from './settings.js';
import { CloudLoggingSink } from './sink.js';
import { latestTombstone } from './tombstones.js';

// How a writer of an attempt starts: after what earlier writers stored, found by one scan of
// the attempt's entries since its newest tombstone.

/** What a writer takes of the store's options. */
export type WriterSettings = Pick<
  ResolvedCloudLoggingOptions,
  'resource' | 'maxPieceBytes' | 'maxBatchEntries' | 'maxBatchBytes'
> & {
  /** The clock in µs. */
  nowMicros(): number;
};

/**
 * A RecordWriter of the attempt resuming after its committed records. Warns once when the
 * attempt's entries go out without Airflow's logical-date label. Throws ConflictError if the log
 * is complete.
 */
export async function openAttemptWriter(
  calls: LogCalls,
  dates: LogicalDates,
  key: AttemptKey,
  at: { rel: string; where: string; settings: WriterSettings },
  signal: AbortSignal | undefined,
): Promise<LogWriter> {
  const { rel, where, settings } = at;
  const tombstone = await latestTombstone(calls, key, signal);
  const start = await resumePoint(calls, key, tombstone, where, signal);
  const resolved = await dates.resolve(key);
  if (resolved.missing) dates.warnOnce(JSON.stringify(key), where, resolved.missing);
  const labels = attemptLabels(key, resolved.labels);
  let lastMicros = start.lastMicros;
  if (!start.found) {
    // An empty record at offset 0 makes a freshly opened attempt exist for read(), stat()
    // and list() before its first flush (readers skip it: it covers no bytes).
    lastMicros = Math.max(settings.nowMicros(), lastMicros + 1);
    const marker = markerEntry(labels, lastMicros, insertId(rel, 'open', 0, 0), {
      [L.offset]: '0',
      [L.length]: '0',
    });
    await calls.write([marker], signal);
  }
  const cutter = new EntryCutter({
    labels,
    logName: calls.logName,
    resource: settings.resource,
    maxPieceBytes: settings.maxPieceBytes,
  });
  const sink = new CloudLoggingSink(
    {
      maxBatchEntries: settings.maxBatchEntries,
      maxBatchBytes: settings.maxBatchBytes,
      maxPieceBytes: settings.maxPieceBytes,
      nowMicros: () => settings.nowMicros(),
      sends: calls.sends,
      write: (entries) => calls.writeOnce(entries, undefined),
      retry: calls.retryOptions(undefined),
    },
    cutter,
    labels,
    rel,
    { lastMicros, pending: start.pending },
  );
  return new RecordWriter(sink, { committed: start.committed, prefix: start.hash });
}

/** Where a new writer of an attempt starts: what earlier writers stored. */
interface ResumePoint {
  /** Whether tasklog holds entries of the attempt (after its newest tombstone). */
  found: boolean;
  /** The contiguous bytes from offset 0: what earlier writers committed. */
  committed: number;
  /** sha256 of those bytes so far, so finish() need not read them back. */
  hash: Hash;
  /** Newest entry timestamp of the attempt (or its tombstone), µs. */
  lastMicros: number;
  /** The unfinished line's bytes stored only as hidden parts, and where they start. */
  pending: { offset: number; bytes: Buffer } | undefined;
}

/** One scan of the attempt's entries after its tombstone. Throws ConflictError if complete. */
async function resumePoint(
  calls: LogCalls,
  key: AttemptKey,
  tombstone: number | undefined,
  where: string,
  signal: AbortSignal | undefined,
): Promise<ResumePoint> {
  // Resuming: the contiguous records from offset 0 are what an earlier writer committed.
  // Their bytes are hashed on the way, so finish() need not read them back; the bytes after
  // the last entry Airflow shows are the unfinished line's hidden parts, kept for its entry.
  const assembler = new RecordAssembler(0);
  const hash = createHash('sha256');
  let lastMicros = tombstone ?? 0;
  let found = false;
  let shownEnd = 0;
  const tail = { start: 0, parts: [] as Buffer[] };
  for await (const item of attemptEntries(calls, key, tombstone, signal)) {
    if (item.kind === 'end') throw new ConflictError(`log ${where} is already complete`);
    if (item.kind !== 'record') continue;
    found = true;
    lastMicros = Math.max(lastMicros, item.micros);
    for (const chunk of assembler.add(item.record)) {
      hash.update(chunk.bytes);
      tail.parts.push(Buffer.from(chunk.bytes));
    }
    if (item.visible) shownEnd = Math.max(shownEnd, item.record.offset + item.record.length);
    while (tail.parts.length > 0 && tail.start + tail.parts[0]!.length <= shownEnd) {
      tail.start += tail.parts.shift()!.length;
    }
    if (tail.parts.length > 0 && tail.start < shownEnd) {
      tail.parts[0] = tail.parts[0]!.subarray(shownEnd - tail.start);
      tail.start = shownEnd;
    }
  }
  const pending =
    tail.parts.length > 0 ? { offset: tail.start, bytes: Buffer.concat(tail.parts) } : undefined;
  return { found, committed: assembler.next, hash, lastMicros, pending };
}
