/**
 * The emulator's model of CloudWatch Logs: log groups holding log streams holding events,
 * with the operations' documented validation and limits. Pure and synchronous; the HTTP layer
 * (cloudwatch-emulator.ts) decodes requests and encodes answers.
 *
 * Reference: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/
 */
import { CloudWatchApiError, errors } from './api-error.js';
import { compileFilterPattern } from './filter-pattern.js';

/** PutLogEvents: at most this many events per call. */
export const MAX_BATCH_EVENTS = 10_000;
/** PutLogEvents: sum of UTF-8 message bytes + EVENT_OVERHEAD per event. */
export const MAX_BATCH_BYTES = 1_048_576;
export const EVENT_OVERHEAD = 26;
/** One event: 1 MiB including its 26 bytes of overhead (the current PutLogEvents page). */
export const MAX_EVENT_MESSAGE_BYTES = 1_048_576 - EVENT_OVERHEAD;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Valid events of one batch may span at most 24 hours. */
export const MAX_BATCH_SPAN_MS = DAY_MS;
/** Events older than this are rejected (reported, dropped), not the whole batch. */
export const MAX_EVENT_AGE_MS = 14 * DAY_MS;
/** Events further ahead than this are rejected (reported, dropped). */
export const MAX_EVENT_FUTURE_MS = 2 * 60 * 60 * 1000;
/** GetLogEvents / FilterLogEvents answer at most 10,000 events and about 1 MB. */
const MAX_READ_EVENTS = 10_000;
const MAX_READ_BYTES = 1_048_576;
const MAX_DESCRIBE_LIMIT = 50;

const GROUP_NAME = /^[.\-_/#A-Za-z0-9]{1,512}$/;
const GROUP_ARN = /^arn:[^:]+:logs:[^:]*:[^:]*:log-group:([^:]+)(?::\*)?$/;

export interface StoredEvent {
  readonly timestamp: number;
  readonly message: string;
  readonly ingestionTime: number;
  /** Ingestion order within the stream: ties of `timestamp` keep it. */
  readonly seq: number;
  readonly bytes: number;
}

interface LogStreamState {
  readonly name: string;
  readonly creationTime: number;
  /** Sorted by (timestamp, seq). */
  readonly events: StoredEvent[];
  nextSeq: number;
  lastIngestionTime?: number;
}

interface LogGroupState {
  readonly name: string;
  readonly creationTime: number;
  readonly streams: Map<string, LogStreamState>;
}

export interface LogServiceOptions {
  region: string;
  accountId: string;
  /** The service's clock in ms (decides too old / too new); default Date.now. */
  now?: () => number;
}

type Json = Record<string, unknown>;

export class LogService {
  readonly #groups = new Map<string, LogGroupState>();
  readonly #region: string;
  readonly #account: string;
  readonly #now: () => number;

  constructor(options: LogServiceOptions) {
    this.#region = options.region;
    this.#account = options.accountId;
    this.#now = options.now ?? Date.now;
  }

  /** Every stored event of a stream, in stored order (for tests that inspect the raw backend). */
  events(group: string, stream: string): readonly StoredEvent[] {
    return this.#groups.get(group)?.streams.get(stream)?.events ?? [];
  }

  /** Names of the streams of a group. */
  streamNames(group: string): string[] {
    return [...(this.#groups.get(group)?.streams.keys() ?? [])].sort();
  }

  call(operation: string, input: Json): Json {
    switch (operation) {
      case 'CreateLogGroup':
        return this.createLogGroup(input);
      case 'CreateLogStream':
        return this.createLogStream(input);
      case 'DescribeLogStreams':
        return this.describeLogStreams(input);
      case 'PutLogEvents':
        return this.putLogEvents(input);
      case 'GetLogEvents':
        return this.getLogEvents(input);
      case 'FilterLogEvents':
        return this.filterLogEvents(input);
      case 'DeleteLogStream':
        return this.deleteLogStream(input);
      case 'DeleteLogGroup':
        return this.deleteLogGroup(input);
      default:
        throw errors.unknownOperation(`Logs_20140328.${operation}`);
    }
  }

  createLogGroup(input: Json): Json {
    const name = str(input, 'logGroupName', true)!;
    if (!GROUP_NAME.test(name)) {
      throw errors.validation(
        'logGroupName',
        name,
        'Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+',
      );
    }
    if (this.#groups.has(name)) throw errors.groupExists();
    this.#groups.set(name, { name, creationTime: this.#now(), streams: new Map() });
    return {};
  }

  createLogStream(input: Json): Json {
    const group = this.#group(input);
    const name = str(input, 'logStreamName', true)!;
    if (name.length < 1 || name.length > 512 || /[:*]/.test(name)) {
      throw errors.validation(
        'logStreamName',
        name,
        'Member must satisfy regular expression pattern: [^:*]*',
      );
    }
    if (group.streams.has(name)) throw errors.streamExists();
    group.streams.set(name, { name, creationTime: this.#now(), events: [], nextSeq: 0 });
    return {};
  }

  deleteLogStream(input: Json): Json {
    const group = this.#group(input);
    const name = str(input, 'logStreamName', true)!;
    if (!group.streams.delete(name)) throw errors.streamNotFound();
    return {};
  }

  deleteLogGroup(input: Json): Json {
    const name = str(input, 'logGroupName', true)!;
    if (!this.#groups.delete(name)) throw errors.groupNotFound();
    return {};
  }

  describeLogStreams(input: Json): Json {
    const group = this.#group(input);
    const prefix = str(input, 'logStreamNamePrefix');
    const orderBy = str(input, 'orderBy') ?? 'LogStreamName';
    if (orderBy !== 'LogStreamName' && orderBy !== 'LastEventTime') {
      throw errors.validation(
        'orderBy',
        orderBy,
        'Member must satisfy enum value set: [LogStreamName, LastEventTime]',
      );
    }
    if (orderBy === 'LastEventTime' && prefix !== undefined) {
      throw errors.invalid('Cannot order by LastEventTime with a logStreamNamePrefix.');
    }
    const descending = input.descending === true;
    const limit = int(input, 'limit', 1, MAX_DESCRIBE_LIMIT) ?? MAX_DESCRIBE_LIMIT;
    const sortKey = (s: LogStreamState): [number, string] =>
      orderBy === 'LastEventTime' ? [lastEventTime(s) ?? 0, s.name] : [0, s.name];
    const cmp = (a: [number, string], b: [number, string]) => {
      const c = a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
      return descending ? -c : c;
    };
    let streams = [...group.streams.values()]
      .filter((s) => prefix === undefined || s.name.startsWith(prefix))
      .sort((a, b) => cmp(sortKey(a), sortKey(b)));
    const token = str(input, 'nextToken');
    if (token !== undefined) {
      const after = decodeToken(token) as [number, string];
      if (!Array.isArray(after) || after.length !== 2) throw errors.invalid('Invalid nextToken');
      streams = streams.filter((s) => cmp(sortKey(s), after) > 0);
    }
    const page = streams.slice(0, limit);
    const out: Json = { logStreams: page.map((s) => this.#streamResource(group, s)) };
    if (streams.length > limit) out.nextToken = encodeToken(sortKey(page.at(-1)!));
    return out;
  }

  putLogEvents(input: Json): Json {
    const group = this.#group(input);
    const stream = this.#stream(group, input);
    const raw = input.logEvents;
    if (!Array.isArray(raw) || raw.length < 1 || raw.length > MAX_BATCH_EVENTS) {
      const n = Array.isArray(raw) ? raw.length : 0;
      throw errors.validation(
        'logEvents',
        `[${n} events]`,
        `Member must have length ${n < 1 ? 'greater than or equal to 1' : `less than or equal to ${MAX_BATCH_EVENTS}`}`,
      );
    }
    let batchBytes = 0;
    const events = raw.map((e: unknown, i: number) => {
      const ev = (e ?? {}) as Json;
      const timestamp = ev.timestamp;
      const message = ev.message;
      if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) {
        throw errors.validation(
          `logEvents.${i + 1}.member.timestamp`,
          String(timestamp),
          'Member must not be null and must be >= 0',
        );
      }
      if (typeof message !== 'string' || message.length < 1) {
        throw errors.validation(
          `logEvents.${i + 1}.member.message`,
          String(message),
          'Member must have length greater than or equal to 1',
        );
      }
      const bytes = Buffer.byteLength(message, 'utf8');
      if (bytes > MAX_EVENT_MESSAGE_BYTES) {
        throw errors.invalid(
          `Log event too large: ${bytes} bytes exceeds limit of ${MAX_EVENT_MESSAGE_BYTES}`,
        );
      }
      batchBytes += bytes + EVENT_OVERHEAD;
      return { timestamp, message, bytes };
    });
    if (batchBytes > MAX_BATCH_BYTES) {
      throw errors.invalid(
        `Upload too large: ${batchBytes} bytes exceeds limit of ${MAX_BATCH_BYTES}`,
      );
    }
    for (let i = 1; i < events.length; i++) {
      if (events[i]!.timestamp < events[i - 1]!.timestamp) {
        throw errors.invalid(
          'Log events in a single PutLogEvents request must be in chronological order.',
        );
      }
    }
    // Events are chronological, so the too-old ones are a prefix and the too-new ones a suffix;
    // they are dropped and reported, the rest is stored.
    const now = this.#now();
    let first = 0;
    while (first < events.length && events[first]!.timestamp < now - MAX_EVENT_AGE_MS) first++;
    let end = events.length;
    while (end > first && events[end - 1]!.timestamp > now + MAX_EVENT_FUTURE_MS) end--;
    const valid = events.slice(first, end);
    if (valid.length > 0 && valid.at(-1)!.timestamp - valid[0]!.timestamp > MAX_BATCH_SPAN_MS) {
      throw errors.invalid(
        'The batch of log events in a single PutLogEvents request cannot span more than 24 hours.',
      );
    }
    for (const e of valid)
      insertSorted(stream, { ...e, ingestionTime: now, seq: stream.nextSeq++ });
    if (valid.length > 0) stream.lastIngestionTime = now;
    const out: Json = { nextSequenceToken: sequenceToken(stream) };
    const rejected: Json = {};
    if (first > 0) rejected.tooOldLogEventEndIndex = first;
    if (end < events.length) rejected.tooNewLogEventStartIndex = end;
    if (Object.keys(rejected).length > 0) out.rejectedLogEventsInfo = rejected;
    return out;
  }

  getLogEvents(input: Json): Json {
    const group = this.#group(input);
    const stream = this.#stream(group, input);
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

  filterLogEvents(input: Json): Json {
    const group = this.#group(input);
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

  #group(input: Json): LogGroupState {
    let name = str(input, 'logGroupName');
    const identifier = str(input, 'logGroupIdentifier');
    if (name !== undefined && identifier !== undefined) {
      throw errors.invalid('LogGroup name and LogGroup ARN are mutually exclusive parameters.');
    }
    if (identifier !== undefined) name = GROUP_ARN.exec(identifier)?.[1] ?? identifier;
    if (name === undefined) {
      throw errors.validation('logGroupName', 'null', 'Member must not be null');
    }
    const group = this.#groups.get(name);
    if (!group) throw errors.groupNotFound();
    return group;
  }

  #stream(group: LogGroupState, input: Json): LogStreamState {
    const name = str(input, 'logStreamName', true)!;
    const stream = group.streams.get(name);
    if (!stream) throw errors.streamNotFound();
    return stream;
  }

  #streamResource(group: LogGroupState, s: LogStreamState): Json {
    const out: Json = {
      logStreamName: s.name,
      creationTime: s.creationTime,
      arn: `arn:aws:logs:${this.#region}:${this.#account}:log-group:${group.name}:log-stream:${s.name}`,
      storedBytes: 0,
      uploadSequenceToken: sequenceToken(s),
    };
    if (s.events.length > 0) {
      out.firstEventTimestamp = s.events[0]!.timestamp;
      out.lastEventTimestamp = lastEventTime(s);
    }
    if (s.lastIngestionTime !== undefined) out.lastIngestionTime = s.lastIngestionTime;
    return out;
  }
}

function lastEventTime(s: LogStreamState): number | undefined {
  return s.events.at(-1)?.timestamp;
}

function sequenceToken(s: LogStreamState): string {
  return String(s.nextSeq).padStart(56, '0');
}

/** Stable: an event goes after every stored event with the same timestamp. */
function insertSorted(stream: LogStreamState, event: StoredEvent): void {
  const events = stream.events;
  if (events.length === 0 || events.at(-1)!.timestamp <= event.timestamp) {
    events.push(event);
    return;
  }
  events.splice(upperBound(events, [event.timestamp, Number.MAX_SAFE_INTEGER]), 0, event);
}

/** Index of the first event whose (timestamp, seq) is greater than `key`. */
function upperBound(events: readonly StoredEvent[], key: [number, number]): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = events[mid]!;
    if (e.timestamp < key[0] || (e.timestamp === key[0] && e.seq <= key[1])) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the first event whose (timestamp, seq) is not less than `key`. */
function lowerBound(events: readonly StoredEvent[], key: [number, number]): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const e = events[mid]!;
    if (e.timestamp < key[0] || (e.timestamp === key[0] && e.seq < key[1])) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function compareKeys(a: [number, string, number], b: [number, string, number]): number {
  return a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) || a[2] - b[2];
}

function timeRange(input: Json): { from: number; to: number } {
  const from = int(input, 'startTime', 0, Number.MAX_SAFE_INTEGER) ?? 0;
  const to = int(input, 'endTime', 0, Number.MAX_SAFE_INTEGER) ?? Number.MAX_SAFE_INTEGER;
  return { from, to };
}

function str(input: Json, field: string, required = false): string | undefined {
  const v = input[field];
  if (v === undefined || v === null) {
    if (required) throw errors.validation(field, 'null', 'Member must not be null');
    return undefined;
  }
  if (typeof v !== 'string') throw errors.serialization(`${field} must be a string`);
  return v;
}

function int(input: Json, field: string, min: number, max: number): number | undefined {
  const v = input[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw errors.serialization(`${field} must be an integer`);
  }
  if (v < min || v > max) {
    throw errors.validation(
      field,
      String(v),
      `Member must have value ${v < min ? `greater than or equal to ${min}` : `less than or equal to ${max}`}`,
    );
  }
  return v;
}

function encodeToken(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decodeToken(token: string): unknown {
  try {
    return JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch (err) {
    throw new CloudWatchApiError('InvalidParameterException', `Invalid nextToken: ${String(err)}`);
  }
}
