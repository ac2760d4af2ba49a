import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import type { AttemptFilter } from '../../path-template.js';
import { matchesFilter } from '../shared/chunk-layout.js';
import { airflowTries, hasAirflow } from './airflow-read.js';
import type { LogCalls } from './calls.js';
import { ALL_TIME, decimal, L, quote } from './entries.js';
import type { LogicalDates } from './logical-date.js';
import { parseEntry } from './reads.js';

/**
 * Every attempt with entries matching `filter`: the first record (`offset="0"`, also the end
 * entry of an empty log) and the tombstones of matching attempts, paged. An attempt is listed
 * when its newest first record is newer than its newest tombstone, so keys are collected until
 * the last page (memory: one small entry per attempt). With `dagId` and `runId` given, the
 * tries of Airflow's own entries of that run are listed too (with the map index asked for, else
 * -1: Airflow's labels have none).
 */
export async function* listAttempts(
  calls: LogCalls,
  dates: LogicalDates,
  filter: AttemptFilter,
  signal: AbortSignal | undefined,
): AsyncGenerator<AttemptKey> {
  const parts: string[] = [];
  const fields: [keyof AttemptKey, string][] = [
    ['dagId', L.dagId],
    ['runId', L.runId],
    ['taskId', L.taskId],
    ['mapIndex', L.mapIndex],
    ['tryNumber', L.tryNumber],
  ];
  for (const [field, label] of fields) {
    const v = filter[field];
    if (v !== undefined) parts.push(`labels.${label}=${quote(String(v))}`);
  }
  const query = [
    `logName=${quote(calls.logName)}`,
    `(labels.${L.offset}="0" OR labels.${L.deleted}="true")`,
    ...parts,
    ALL_TIME,
  ].join(' AND ');
  const attempts = new Map<string, { key: AttemptKey; started: number; deleted: number }>();
  const airflow: AttemptKey[] = [];
  let token: string | undefined;
  do {
    const page = await calls.page(query, 'timestamp asc', calls.pageSize, token, signal);
    for (const entry of page.entries) {
      const key = keyOf(entry.labels ?? {});
      if (!key || entry.logName !== calls.logName || !matchesFilter(key, filter)) continue;
      const parsed = parseEntry(entry, key);
      if (!parsed) continue;
      const state = attempts.get(idOf(key)) ?? { key, started: -1, deleted: -1 };
      if (parsed.kind === 'tombstone') state.deleted = Math.max(state.deleted, parsed.micros);
      else if ((parsed.kind === 'record' && parsed.record.offset === 0) || parsed.kind === 'end') {
        state.started = Math.max(state.started, parsed.micros);
      }
      attempts.set(idOf(key), state);
    }
    token = page.next;
  } while (token);
  if (filter.dagId !== undefined && filter.runId !== undefined) {
    const { dagId, runId } = filter;
    const resolved = await dates.resolve({ dagId, runId });
    const ids = { dagId, taskId: filter.taskId, tryNumber: filter.tryNumber };
    const tries = airflowTries(calls.page, calls.logName, ids, resolved.labels, signal);
    for await (const { taskId, tryNumber } of tries) {
      const mapIndex = filter.mapIndex ?? -1;
      const key = attemptKey({ dagId, runId, taskId, mapIndex, tryNumber });
      if (attempts.has(idOf(key))) continue;
      if (await hasAirflow(calls, key, resolved.labels, signal)) airflow.push(key);
    }
  }
  // Only after every page: a later page may hold a newer tombstone or first record.
  for (const { key, started, deleted } of attempts.values()) {
    if (started > deleted) yield key;
  }
  yield* airflow;
}

/** The attempt an entry's labels name, or undefined (not a valid attempt: not tasklog's). */
function keyOf(labels: Record<string, string>): AttemptKey | undefined {
  const mapIndex = labels[L.mapIndex] === '-1' ? -1 : decimal(labels[L.mapIndex]);
  const tryNumber = decimal(labels[L.tryNumber]);
  if (mapIndex === undefined || tryNumber === undefined) return undefined;
  try {
    return attemptKey({
      dagId: labels[L.dagId],
      runId: labels[L.runId],
      taskId: labels[L.taskId],
      mapIndex,
      tryNumber,
    });
  } catch {
    return undefined;
  }
}

function idOf(key: AttemptKey): string {
  return JSON.stringify([key.dagId, key.runId, key.taskId, key.mapIndex, key.tryNumber]);
}
