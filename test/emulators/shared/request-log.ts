/**
 * The request logs the emulators keep for tests to inspect: plain arrays (tests read, filter and
 * clear them), bounded so that a long run does not grow without end.
 */
import type { ServerResponse } from 'node:http';
import { answeredStatus, type HttpExchange } from './http-exchange.js';

export const REQUEST_LOG_LIMIT = 10_000;

/** Appends `entry`, dropping the oldest entries beyond `limit`. */
export function appendBounded<T>(log: T[], entry: T, limit = REQUEST_LOG_LIMIT): void {
  log.push(entry);
  if (log.length > limit) log.splice(0, log.length - limit);
}

/**
 * Runs `record` once the answer is settled: on 'finish' (handed to the socket, before the client
 * can see it, so a test that got its answer finds the entry) or on 'close' for answers that
 * never completed.
 */
export function whenAnswered(res: ServerResponse, record: () => void): void {
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    record();
  };
  res.once('finish', once);
  res.once('close', once);
}

/** What the HTTP emulators log of every request (some add their own fields). */
export interface HttpRequestLogEntry {
  method: string;
  /** Raw request target: path and query. */
  path: string;
  /** Status sent; 0 when the connection was dropped without an answer. */
  status: number;
}

/** Logs `ex` once answered, with `extra()` read at that time. */
export function logHttpRequest<E extends HttpRequestLogEntry>(
  log: E[],
  ex: HttpExchange,
  extra: () => Omit<E, keyof HttpRequestLogEntry> = () =>
    ({}) as Omit<E, keyof HttpRequestLogEntry>,
): void {
  const method = ex.req.method ?? 'GET';
  const path = ex.req.url ?? '/';
  whenAnswered(ex.res, () =>
    appendBounded(log, { method, path, status: answeredStatus(ex), ...extra() } as E),
  );
}
