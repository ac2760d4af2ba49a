/**
 * The reads of CloudWatch Logs: GetLogEvents pages one stream forward or backward by tokens that
 * name a position, FilterLogEvents merges a group's streams in (timestamp, stream, ingestion)
 * order. Both answer at most MAX_READ_EVENTS events and about MAX_READ_BYTES.
 */
import { errors } from './api-error.js';
import { compileFilterPattern } from './filter-pattern.js';
import { EVENT_OVERHEAD, MAX_READ_BYTES, MAX_READ_EVENTS } from './limits.js';
import { decodeToken, encodeToken, int, type Json, str, timeRange } from './request-fields.js';
import {
  compareKeys,
  type LogGroupState,
  type LogStreamState,
  lowerBound,
  type StoredEvent,
  upperBound,
} from './stream-state.js';

/** GetLogEvents on `stream`: from a token, from the head (startFromHead) or back from the end. */
export function getStreamEvents(stream: LogStreamState, input: Json): Json {
  const limit = int(input, 'limit', 1, MAX_READ_EVENTS) ?? MAX_READ_EVENTS;
  const { from, to } = timeRange(input);
  const token = str(input, 'nextToken');
  let direction: 'f' | 'b';
  let position: [number, number];
  if (token !== undefined) {
    const m = /^([fb])\/(-?\d+)\/(-?\d+)$/.exec(token);
    if (!m) throw errors.invalid('The specified nextToken is invalid.');
    direction = m[1] as 'f' | 'b';
    position = [Number(m[2]), Number(m[3])];
  } else if (input.startFromHead === true) {
    direction = 'f';
    position = [-1, -1];
  } else {
    direction = 'b';
    position = [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER];
  }
  const events = stream.events;
  const inRange = (e: StoredEvent) => e.timestamp >= from && e.timestamp < to;
  const picked: StoredEvent[] = [];
  let bytes = 0;
  const fits = (e: StoredEvent) => {
    if (picked.length >= limit) return false;
    if (picked.length > 0 && bytes + e.bytes + EVENT_OVERHEAD > MAX_READ_BYTES) return false;
    bytes += e.bytes + EVENT_OVERHEAD;
    return true;
  };
  if (direction === 'f') {
    for (let i = upperBound(events, position); i < events.length; i++) {
      const e = events[i]!;
      if (e.timestamp >= to) break;
      if (!inRange(e)) continue;
      if (!fits(e)) break;
      picked.push(e);
    }
  } else {
    for (let i = lowerBound(events, position) - 1; i >= 0; i--) {
      const e = events[i]!;
      if (e.timestamp < from) break;
      if (!inRange(e)) continue;
      if (!fits(e)) break;
      picked.push(e);
    }
    picked.reverse();
  }
  // At the end of the stream the token that was sent comes back: that is how a reader
  // knows it is done (the forward token is never null).
  const first = picked[0];
  const last = picked.at(-1);
  const here = `${position[0]}/${position[1]}`;
  return {
    events: picked.map((e) => ({
      timestamp: e.timestamp,
      message: e.message,
      ingestionTime: e.ingestionTime,
    })),
    nextForwardToken: last
      ? `f/${last.timestamp}/${last.seq}`
      : direction === 'f'
        ? (token ?? `f/${here}`)
        : `f/${here}`,
    nextBackwardToken: first
      ? `b/${first.timestamp}/${first.seq}`
      : direction === 'b'
        ? (token ?? `b/${here}`)
        : `b/${here}`,
  };
}

/** FilterLogEvents over the streams of `group` that the request names or prefixes. */
export function filterGroupEvents(group: LogGroupState, input: Json): Json {
  const names = input.logStreamNames;
  const prefix = str(input, 'logStreamNamePrefix');
  if (names !== undefined && prefix !== undefined) {
    throw errors.invalid('logStreamNames and logStreamNamePrefix are mutually exclusive');
  }
  let streams: LogStreamState[];
  if (names !== undefined) {
    if (!Array.isArray(names) || names.length < 1 || names.length > 100) {
      throw errors.validation(
        'logStreamNames',
        String(names),
        'Member must have length between 1 and 100',
      );
    }
    streams = names.map((n) => {
      const s = group.streams.get(String(n));
      if (!s) throw errors.streamNotFound();
      return s;
    });
  } else {
    streams = [...group.streams.values()].filter(
      (s) => prefix === undefined || s.name.startsWith(prefix),
    );
  }
  streams.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const limit = int(input, 'limit', 1, MAX_READ_EVENTS) ?? MAX_READ_EVENTS;
  const { from, to } = timeRange(input);
  const matches = compileFilterPattern(str(input, 'filterPattern'));
  const token = str(input, 'nextToken');
  let after: [number, string, number] = [-1, '', -1];
  if (token !== undefined) {
    const t = decodeToken(token);
    if (!Array.isArray(t) || t.length !== 3) throw errors.invalid('Invalid nextToken');
    after = t as [number, string, number];
  }
  // A k-way merge over the streams in (timestamp, stream name, ingestion order).
  const cursors = streams.map((s) => {
    const key = (e: StoredEvent): [number, string, number] => [e.timestamp, s.name, e.seq];
    let i = lowerBound(s.events, [Math.max(from, after[0]), -1]);
    while (i < s.events.length && compareKeys(key(s.events[i]!), after) <= 0) i++;
    return { stream: s, i, key };
  });
  const out: Json[] = [];
  let bytes = 0;
  let last: [number, string, number] | undefined;
  let more = false;
  for (;;) {
    let best: (typeof cursors)[number] | undefined;
    for (const c of cursors) {
      const e = c.stream.events[c.i];
      if (!e || e.timestamp >= to) continue;
      if (!best || compareKeys(c.key(e), best.key(best.stream.events[best.i]!)) < 0) best = c;
    }
    if (!best) break;
    const e = best.stream.events[best.i]!;
    if (
      out.length >= limit ||
      (out.length > 0 && bytes + e.bytes + EVENT_OVERHEAD > MAX_READ_BYTES)
    ) {
      more = true;
      break;
    }
    best.i++;
    last = best.key(e);
    if (e.timestamp < from || !matches(e.message)) continue;
    bytes += e.bytes + EVENT_OVERHEAD;
    out.push({
      logStreamName: best.stream.name,
      timestamp: e.timestamp,
      message: e.message,
      ingestionTime: e.ingestionTime,
      eventId: `${e.timestamp}-${e.seq}-${encodeURIComponent(best.stream.name)}`,
    });
  }
  const result: Json = {
    events: out,
    searchedLogStreams: streams.map((s) => ({
      logStreamName: s.name,
      searchedCompletely: !more,
    })),
  };
  if (more && last) result.nextToken = encodeToken(last);
  return result;
}
