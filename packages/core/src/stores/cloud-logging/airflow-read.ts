import type { AttemptKey } from '../../attempt-key.js';
import { NotFoundError, OffsetOutOfRangeError } from '../../errors.js';
import type { LogChunk, LogStat } from '../../store.js';
import type { LogCalls, PageReader } from './calls.js';
import {
  type AirflowDateLabels,
  ALL_TIME,
  type ApiEntry,
  airflowMessage,
  decimal,
  formatMicros,
  L,
  quote,
  timestampMicros,
} from './entries.js';
import type { LogicalDates } from './logical-date.js';
import { latestTombstone } from './tombstones.js';

/**
 * Reading entries that Airflow's StackdriverTaskHandler wrote itself: labels `dag_id`,
 * `task_id`, `try_number` and `logical_date` (3.x) / `execution_date` (2.x), no `run_id` or
 * `map_index`, text payloads (google-cloud-logging 3) or `jsonPayload.message` (2), no offsets.
 * tasklog reads them as Airflow's reader shows them: the messages it keeps, in timestamp order
 * (the service breaks ties by insertId), joined by "\n". An attempt is found through its run's
 * logical date; Airflow's labels name no map index, so these entries stand for every map index of
 * the task, as in Airflow's UI.
 */

/** Past this, list() stops excluding the tries it found and pages through the rest instead. */
const MAX_EXCLUDING_FILTER = 15_000;

/** The condition on the run's logical date: either label, as Airflow 2 or 3 wrote it. */
function dateCondition(dates: AirflowDateLabels): string | undefined {
  const parts: string[] = [];
  if (dates.logical_date !== undefined)
    parts.push(`labels.${L.logicalDate}=${quote(dates.logical_date)}`);
  if (dates.execution_date !== undefined) {
    parts.push(`labels.${L.executionDate}=${quote(dates.execution_date)}`);
  }
  if (parts.length === 0) return undefined;
  return parts.length === 1 ? parts[0] : `(${parts.join(' OR ')})`;
}

/** Whether an entry is Airflow's own, of this dag (and task and try when given), exactly. */
function isAirflowEntry(
  entry: ApiEntry,
  logName: string,
  dates: AirflowDateLabels,
  ids: { dagId: string; taskId?: string; tryNumber?: number },
): boolean {
  const labels = entry.labels ?? {};
  // The query language compares strings case-insensitively: check exactly here.
  return (
    entry.logName === logName &&
    labels[L.runId] === undefined &&
    labels[L.dagId] === ids.dagId &&
    (ids.taskId === undefined || labels[L.taskId] === ids.taskId) &&
    (ids.tryNumber === undefined || labels[L.tryNumber] === String(ids.tryNumber)) &&
    ((dates.logical_date !== undefined && labels[L.logicalDate] === dates.logical_date) ||
      (dates.execution_date !== undefined && labels[L.executionDate] === dates.execution_date))
  );
}

/**
 * The messages Airflow shows for one try, oldest first, with their timestamps; nothing when the
 * dates are unknown. Only entries newer than `after` (µs: a tombstone) count.
 */
export async function* airflowMessages(
  page: PageReader,
  logName: string,
  key: AttemptKey,
  dates: AirflowDateLabels,
  after: number | undefined,
  pageSize: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<{ message: string; micros: number }> {
  const date = dateCondition(dates);
  if (date === undefined) return;
  const filter = [
    `logName=${quote(logName)}`,
    `labels.${L.dagId}=${quote(key.dagId)}`,
    `labels.${L.taskId}=${quote(key.taskId)}`,
    `labels.${L.tryNumber}=${quote(String(key.tryNumber))}`,
    date,
    after === undefined ? ALL_TIME : `timestamp > ${quote(formatMicros(after))}`,
  ].join(' AND ');
  let token: string | undefined;
  do {
    const result = await page(filter, 'timestamp asc', pageSize, token, signal);
    for (const entry of result.entries) {
      if (!isAirflowEntry(entry, logName, dates, key)) continue;
      const message = airflowMessage(entry);
      if (message !== undefined) yield { message, micros: timestampMicros(entry.timestamp) };
    }
    token = result.next;
  } while (token);
}

/**
 * Airflow's view as bytes from `offset` (to `end`): the messages joined by "\n". Returns the
 * size read and whether there was any message.
 */
export async function* airflowLog(
  messages: AsyncIterable<{ message: string }>,
  offset: number,
  end: number | undefined,
): AsyncGenerator<{ offset: number; bytes: Uint8Array }, { size: number; found: boolean }> {
  let at = 0;
  let found = false;
  for await (const { message } of messages) {
    const bytes = Buffer.from(found ? `\n${message}` : message, 'utf8');
    found = true;
    const from = Math.max(at, offset);
    const to = Math.min(at + bytes.length, end ?? Number.POSITIVE_INFINITY);
    if (to > from) yield { offset: from, bytes: bytes.subarray(from - at, to - at) };
    at += bytes.length;
    if (end !== undefined && at >= end) return { size: at, found };
  }
  return { size: at, found };
}

/**
 * The tries Airflow's entries hold for a run (its logical date), of one task or of every task of
 * the dag: one `timestamp desc` entry per query, each query excluding the (task, try) pairs
 * already found, so a try costs one small query however long its log is.
 */
export async function* airflowTries(
  page: PageReader,
  logName: string,
  ids: { dagId: string; taskId?: string; tryNumber?: number },
  dates: AirflowDateLabels,
  signal: AbortSignal | undefined,
): AsyncGenerator<{ taskId: string; tryNumber: number }> {
  const date = dateCondition(dates);
  if (date === undefined) return;
  const base = [
    `logName=${quote(logName)}`,
    `labels.${L.dagId}=${quote(ids.dagId)}`,
    ...(ids.taskId !== undefined ? [`labels.${L.taskId}=${quote(ids.taskId)}`] : []),
    ...(ids.tryNumber !== undefined
      ? [`labels.${L.tryNumber}=${quote(String(ids.tryNumber))}`]
      : []),
    // Every entry found must be excludable by its own task and try (and be Airflow's).
    `labels.${L.taskId}:*`,
    `labels.${L.tryNumber}:*`,
    date,
    `NOT labels.${L.runId}:*`,
    ALL_TIME,
  ].join(' AND ');
  const excluded: string[] = [];
  const seen = new Set<string>();
  const take = function* (entry: ApiEntry) {
    if (!isAirflowEntry(entry, logName, dates, ids)) return;
    const labels = entry.labels ?? {};
    const taskId = labels[L.taskId];
    const tryNumber = decimal(labels[L.tryNumber]);
    if (taskId === undefined || tryNumber === undefined || tryNumber < 1) return;
    const id = JSON.stringify([taskId, tryNumber]);
    if (seen.has(id)) return;
    seen.add(id);
    yield { taskId, tryNumber };
  };
  for (;;) {
    const filter = excluded.length ? `${base} AND NOT (${excluded.join(' OR ')})` : base;
    if (filter.length > MAX_EXCLUDING_FILTER) break;
    const { entries } = await page(filter, 'timestamp desc', 1, undefined, signal);
    const entry = entries[0];
    if (!entry) return;
    const labels = entry.labels ?? {};
    excluded.push(
      `(labels.${L.taskId}=${quote(labels[L.taskId] ?? '')} AND labels.${L.tryNumber}=${quote(labels[L.tryNumber] ?? '')})`,
    );
    yield* take(entry);
  }
  // Very many tasks and tries: page through every remaining entry.
  let token: string | undefined;
  do {
    const result = await page(base, 'timestamp asc', 1000, token, signal);
    for (const entry of result.entries) yield* take(entry);
    token = result.next;
  } while (token);
}

/**
 * Airflow's own entries of an attempt tasklog holds none of, as bytes (newer than its tombstone).
 * Throws NotFoundError when Airflow shows nothing either, OffsetOutOfRangeError.
 */
export async function* readAirflow(
  calls: LogCalls,
  dates: LogicalDates,
  key: AttemptKey,
  range: { tombstone: number | undefined; offset: number; end: number | undefined; where: string },
  signal: AbortSignal | undefined,
): AsyncGenerator<LogChunk> {
  const { tombstone, offset, end } = range;
  const resolved = await dates.resolve(key);
  const messages = airflowMessages(
    calls.page,
    calls.logName,
    key,
    resolved.labels,
    tombstone,
    calls.pageSize,
    signal,
  );
  const log = airflowLog(messages, offset, end);
  let step = await log.next();
  while (!step.done) {
    yield step.value;
    step = await log.next();
  }
  const { size, found } = step.value;
  if (!found) throw new NotFoundError(`no log stored for ${range.where}`);
  if (offset > size) throw new OffsetOutOfRangeError(offset, size);
}

/**
 * Whether Airflow's own entries of the attempt show anything (after a tombstone tasklog wrote
 * for it: a deleted attempt stays hidden unless Airflow wrote again).
 */
export async function hasAirflow(
  calls: LogCalls,
  key: AttemptKey,
  dates: AirflowDateLabels,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const tombstone = await latestTombstone(calls, key, signal);
  const messages = airflowMessages(
    calls.page,
    calls.logName,
    key,
    dates,
    tombstone,
    calls.pageSize,
    signal,
  );
  for await (const _ of messages) return true;
  return false;
}

/** Size and newest timestamp of Airflow's own entries of the attempt, or undefined. */
export async function statAirflow(
  calls: LogCalls,
  dates: LogicalDates,
  key: AttemptKey,
  signal: AbortSignal | undefined,
): Promise<LogStat | undefined> {
  const labels = (await dates.resolve(key)).labels;
  const tombstone = await latestTombstone(calls, key, signal);
  let size = -1;
  let newest = 0;
  for await (const { message, micros } of airflowMessages(
    calls.page,
    calls.logName,
    key,
    labels,
    tombstone,
    calls.pageSize,
    signal,
  )) {
    size += Buffer.byteLength(message) + 1;
    newest = Math.max(newest, micros);
  }
  if (size < 0) return undefined;
  return { size, complete: false, modifiedAt: new Date(Math.floor(newest / 1000)) };
}
