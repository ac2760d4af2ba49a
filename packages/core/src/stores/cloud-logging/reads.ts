import type { AttemptKey } from '../../attempt-key.js';
import { IntegrityError, OffsetOutOfRangeError } from '../../errors.js';
import type { LogChunk } from '../../store.js';
import { type LogRecord, RecordAssembler } from '../shared/log-records.js';
import type { LogCalls } from './calls.js';
import {
  ALL_TIME,
  type ApiEntry,
  decimal,
  formatMicros,
  L,
  parseRecord,
  quote,
  timestampMicros,
} from './entries.js';

// An attempt's entries read back: which are tasklog's, paged oldest or newest first, and as
// the log's bytes.

/** What a page of an attempt's entries says, entry by entry. */
export type Parsed =
  | { kind: 'record'; record: LogRecord; visible: boolean; micros: number }
  | { kind: 'end'; size: number; sha256: string; micros: number }
  | { kind: 'tombstone'; micros: number };

/**
 * An entry of `key` as a record, end mark or tombstone; undefined for anything else (another
 * attempt whose labels differ only in case — the query language compares strings
 * case-insensitively — or an entry written by someone else, e.g. Airflow itself).
 */
export function parseEntry(entry: ApiEntry, key: AttemptKey): Parsed | undefined {
  const labels = entry.labels ?? {};
  if (
    labels[L.dagId] !== key.dagId ||
    labels[L.runId] !== key.runId ||
    labels[L.taskId] !== key.taskId ||
    labels[L.mapIndex] !== String(key.mapIndex) ||
    labels[L.tryNumber] !== String(key.tryNumber)
  ) {
    return undefined;
  }
  const micros = timestampMicros(entry.timestamp);
  if (labels[L.deleted] === 'true') return { kind: 'tombstone', micros };
  if (labels[L.end] === 'true') {
    const size = decimal(labels[L.size]);
    const sha256 = labels[L.sha256];
    if (size === undefined || !/^[0-9a-f]{64}$/.test(sha256 ?? '')) return undefined;
    return { kind: 'end', size, sha256: sha256!, micros };
  }
  const parsed = parseRecord(entry);
  return parsed && { kind: 'record', ...parsed, micros };
}

/** The filter for one attempt's entries, newer than `after` (µs) when given. */
export function attemptFilter(
  logName: string,
  key: AttemptKey,
  after: number | undefined,
  extra?: string,
): string {
  return [
    `logName=${quote(logName)}`,
    `labels.${L.dagId}=${quote(key.dagId)}`,
    `labels.${L.runId}=${quote(key.runId)}`,
    `labels.${L.taskId}=${quote(key.taskId)}`,
    `labels.${L.mapIndex}=${quote(String(key.mapIndex))}`,
    `labels.${L.tryNumber}=${quote(String(key.tryNumber))}`,
    ...(extra ? [extra] : []),
    after === undefined ? ALL_TIME : `timestamp > ${quote(formatMicros(after))}`,
  ].join(' AND ');
}

/** The attempt's entries after `after` (µs), oldest first, paged. */
export async function* attemptEntries(
  calls: LogCalls,
  key: AttemptKey,
  after: number | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<Parsed> {
  const filter = attemptFilter(calls.logName, key, after);
  let token: string | undefined;
  do {
    const page = await calls.page(filter, 'timestamp asc', calls.pageSize, token, signal);
    for (const entry of page.entries) {
      if (entry.logName !== calls.logName) continue;
      const parsed = parseEntry(entry, key);
      if (parsed) yield parsed;
    }
    token = page.next;
  } while (token);
}

/**
 * The attempt's newest entry that tasklog wrote (record, end mark or tombstone). Entries of
 * others under the same labels are skipped, so this pages backwards past them; normally the
 * first entry of the first page decides.
 */
export async function newestEntry(
  calls: LogCalls,
  key: AttemptKey,
  signal: AbortSignal | undefined,
): Promise<Parsed | undefined> {
  const filter = attemptFilter(calls.logName, key, undefined);
  let token: string | undefined;
  let size = 1;
  do {
    const page = await calls.page(filter, 'timestamp desc', size, token, signal);
    const item = page.entries.map((e) => parseEntry(e, key)).find((p) => p !== undefined);
    if (item) return item;
    token = page.next;
    size = calls.pageSize;
  } while (token);
  return undefined;
}

/**
 * The log's bytes from `offset` (to `end`), from the entries after the tombstone; nothing when
 * tasklog wrote none (`found` false). Throws OffsetOutOfRangeError, IntegrityError (a finished
 * log with a hole).
 */
export async function* readAttempt(
  calls: LogCalls,
  key: AttemptKey,
  range: { tombstone: number | undefined; offset: number; end: number | undefined; where: string },
  signal: AbortSignal | undefined,
): AsyncGenerator<LogChunk, { found: boolean }> {
  const { tombstone, offset, end, where } = range;
  // From 0, so holes before `offset` are seen and the size is known at the end.
  const assembler = new RecordAssembler(0);
  let found = false;
  let complete: { size: number } | undefined;
  let newest = tombstone;
  // A second round picks up what a running writer stored while the first one was read
  // (e.g. the last bytes and the end entry of finish()); two rounds at most, so a read
  // always ends.
  for (let round = 0; round < 2 && !complete; round++) {
    if (round === 1 && !found) break;
    for await (const item of attemptEntries(calls, key, newest, signal)) {
      newest = Math.max(newest ?? 0, item.micros);
      if (item.kind === 'tombstone') continue;
      found = true;
      if (item.kind === 'end') {
        complete = { size: item.size };
        continue;
      }
      for (const chunk of assembler.add(item.record)) {
        const from = Math.max(chunk.offset, offset);
        const to = Math.min(chunk.offset + chunk.bytes.length, end ?? Number.POSITIVE_INFINITY);
        if (to > from) {
          yield {
            offset: from,
            bytes: chunk.bytes.subarray(from - chunk.offset, to - chunk.offset),
          };
        }
      }
      if (end !== undefined && assembler.next >= end) return { found };
    }
  }
  if (!found) return { found };
  if (complete && assembler.next !== complete.size) {
    throw new IntegrityError(
      `log ${where} is complete with ${complete.size} bytes but its records cover only ${assembler.next} contiguous bytes`,
    );
  }
  const size = assembler.next;
  if (offset > size) throw new OffsetOutOfRangeError(offset, size);
  return { found };
}
