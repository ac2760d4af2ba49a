/**
 * Event timestamps. They decide three things:
 *
 * - Whether Airflow shows an event at all. For a finished task both Airflow 2 and 3 ask
 *   GetLogEvents only for events before `end_date + 30 s` (`get_cloudwatch_logs`), so a log
 *   shipped later than that (a backlog after an outage, `tasklog ship` of an older log) must not
 *   be stamped with the time it was shipped. An event is stamped with the time its line says it
 *   was written (Airflow 2's `[2024-01-01T00:00:05.123+0000] …`, `tasklog run`'s
 *   `[2024-01-01T00:00:05.123Z] …`, Airflow 3's `{"timestamp":"…",…}`); a line without one takes
 *   its predecessor's, the first ones the next stamped line's in the batch, else the time it
 *   is sent.
 * - Whether CloudWatch takes it: events older than 14 days or more than 2 hours ahead are
 *   rejected, so every stamp is kept an hour inside that window (an older log is stamped 13 days
 *   and 23 hours back; Airflow, asking up to its end date, then does not see it).
 * - The order of the stream, which is the order a reader counts offsets in: CloudWatch orders a
 *   stream by timestamp, so stamps never decrease. Each batch starts 1 ms after everything sent
 *   before it; that is how a writer tells, after a lost answer, whether the batch was stored
 *   (the stream's newest stamp reaches it or not). An event with the same message as its
 *   predecessor is stamped 1 ms later too: Airflow 3 drops a record equal to the one before it,
 *   time included (`_flush_logs_out_of_heap`).
 */

const HOUR_MS = 60 * 60 * 1000;
const MAX_EVENT_AGE_MS = 14 * 24 * HOUR_MS;
/** How far inside CloudWatch's window (14 days back, 2 hours ahead) stamps stay. */
const WINDOW_MARGIN_MS = HOUR_MS;
const MAX_AHEAD_MS = HOUR_MS;

export interface ClockState {
  /** The highest stamp given so far. */
  last: number;
  /** The line time the previous event went by (inherited by a line without one). */
  lineTime: number | undefined;
  /** The previous event's message. */
  message: string | undefined;
}

export interface Stampable {
  /** The time the event's line says it was written, if it says. */
  readonly lineTime: number | undefined;
  readonly message: string;
}

/**
 * Stamps for the events of one batch, in order: as many as fit in `maxSpanMs` (a batch may span
 * at most 24 hours), at least one. Returns the stamps and the clock after them; `state` is not
 * changed, so a caller commits only what it sends.
 */
export function stampBatch(
  state: ClockState,
  events: readonly Stampable[],
  now: number,
  maxSpanMs: number,
): { stamps: number[]; state: ClockState } {
  const lo = now - MAX_EVENT_AGE_MS + WINDOW_MARGIN_MS;
  const hi = now + MAX_AHEAD_MS;
  const ahead = events.find((e) => e.lineTime !== undefined)?.lineTime;
  let { last, lineTime, message } = state;
  const stamps: number[] = [];
  for (const [i, e] of events.entries()) {
    lineTime = e.lineTime ?? lineTime ?? ahead;
    const base = Math.min(Math.max(lineTime ?? now, lo), hi);
    const stamp = Math.max(base, last + (i === 0 || e.message === message ? 1 : 0));
    if (i > 0 && stamp - stamps[0]! > maxSpanMs) break;
    stamps.push(stamp);
    last = stamp;
    message = e.message;
  }
  return { stamps, state: { last, lineTime, message } };
}

// `[2024-01-01T00:00:05.123+0000]`, `[2024-01-01 00:00:05,123]`, `[2024-01-01T00:00:05Z]`.
const BRACKETED =
  /^\[(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?\]/;
// Airflow 3's JSON lines start with their timestamp (its renderer puts it first).
const JSON_TIMESTAMP =
  /^\{"timestamp":\s*"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?"/;

/** The time (ms since the epoch) a log line says it was written, or undefined. No zone = UTC. */
export function lineTime(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const m = BRACKETED.exec(text) ?? JSON_TIMESTAMP.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const ms = frac ? Math.floor(Number(`0.${frac}`) * 1000) : 0;
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  if (Number.isNaN(t)) return undefined;
  if (zone && zone !== 'Z') {
    const z = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
    const offset = (Number(z[2]) * 60 + Number(z[3])) * 60_000;
    t -= z[1] === '+' ? offset : -offset;
  }
  return t;
}
