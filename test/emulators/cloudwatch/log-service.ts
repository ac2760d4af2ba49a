/**
 * The emulator's model of CloudWatch Logs: log groups holding log streams holding events,
 * with the operations' documented validation and limits (limits.ts). Pure and synchronous; the
 * HTTP layer (cloudwatch-emulator.ts) decodes requests and encodes answers, the reads
 * (GetLogEvents, FilterLogEvents) are in event-reads.ts.
 *
 * Reference: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/
 */
import { errors } from './api-error.js';
import { filterGroupEvents, getStreamEvents } from './event-reads.js';
import {
  EVENT_OVERHEAD,
  MAX_BATCH_BYTES,
  MAX_BATCH_EVENTS,
  MAX_BATCH_SPAN_MS,
  MAX_DESCRIBE_LIMIT,
  MAX_EVENT_AGE_MS,
  MAX_EVENT_FUTURE_MS,
  MAX_EVENT_MESSAGE_BYTES,
} from './limits.js';
import { decodeToken, encodeToken, int, type Json, str } from './request-fields.js';
import {
  insertSorted,
  type LogGroupState,
  type LogStreamState,
  lastEventTime,
  type StoredEvent,
  sequenceToken,
} from './stream-state.js';

const GROUP_NAME = /^[.\-_/#A-Za-z0-9]{1,512}$/;
const GROUP_ARN = /^arn:[^:]+:logs:[^:]*:[^:]*:log-group:([^:]+)(?::\*)?$/;

/** The operations the service answers, by their names on the wire. */
const OPERATIONS = [
  'CreateLogGroup',
  'CreateLogStream',
  'DescribeLogStreams',
  'PutLogEvents',
  'GetLogEvents',
  'FilterLogEvents',
  'DeleteLogStream',
  'DeleteLogGroup',
] as const;
type Operation = (typeof OPERATIONS)[number];

/** Whether the service answers `name`, one of OPERATIONS. */
function isOperation(name: string): name is Operation {
  return (OPERATIONS as readonly string[]).includes(name);
}

export interface LogServiceOptions {
  region: string;
  accountId: string;
  /** The service's clock in ms (decides too old / too new); default Date.now. */
  now?: () => number;
}

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

  /** Runs `operation` (its name on the wire) by the method of the same name in lower camel case. */
  call(operation: string, input: Json): Json {
    if (!isOperation(operation)) throw errors.unknownOperation(`Logs_20140328.${operation}`);
    const method = `${operation[0]!.toLowerCase()}${operation.slice(1)}` as Uncapitalize<Operation>;
    return this[method](input);
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
    return getStreamEvents(this.#stream(group, input), input);
  }

  filterLogEvents(input: Json): Json {
    return filterGroupEvents(this.#group(input), input);
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
