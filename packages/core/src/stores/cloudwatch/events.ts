import type { AttemptKey } from '../../attempt-key.js';
import { type LogRecord, splitRecord } from '../shared/log-records.js';

/**
 * How a log travels as CloudWatch events, which have only a `timestamp` and a `message`.
 *
 * Airflow shows each event's message as one line: 2.x as `[time] message`
 * (`CloudwatchTaskHandler._event_to_str`), 3.x parses it with `json.loads` and shows its
 * `event`, else the message itself (`CloudWatchRemoteLogIO._parse_log_event_as_dumped_json`,
 * then `StructuredLogMessage` needs a string `event`). So a line travels as one event whose
 * message is the line's text, and nothing else: a **plain** event. Its byte offset is not in it;
 * a reader counts from the stream's head (UTF-8 length + 1 for the `\n`).
 *
 * What a plain event cannot say goes in an **escape**, used only for the lines that need it: a
 * JSON object whose first key is `"tasklog"` (the prefix `{"tasklog":`, which no plain event
 * starts with), holding the record's offset and length, and an `event` with the line's text.
 * Airflow 3 shows that `event` as the line, with ` tasklog={…}` after it; Airflow 2 shows the
 * JSON. Escapes are written for:
 * - an empty line (CloudWatch refuses an empty message),
 * - bytes that are not UTF-8 (`base64` holds them; `event` shows them as U+FFFD),
 * - a piece of a line without its `\n`: a line longer than one event, the end of a log without a
 *   final newline, the unfinished line a running attempt's flush made durable,
 * - a line that itself starts with `{"tasklog":`,
 * - a first line that is a JSON object: a reader tells Airflow 3's own streams (JSON events) from
 *   tasklog's by the first event (`classifyStream`). When it has a string `event` (Airflow 3's
 *   own log lines do), its fields are spread into the escape and the exact text goes in `text`,
 *   so Airflow 3 shows it as it shows the same line plain.
 * Every escape carries its offset, so a reader re-synchronises its count at each one (and drops
 * a repeated stretch that starts with one).
 *
 * Besides lines there are two escapes: the **header** `{"tasklog":{"key":{…}},"event":"tasklog:
 * log of …"}`, first in a stream only when its name does not give the attempt back
 * (names.ts), and the **end** `{"tasklog":{"end":{"size":N,"sha256":"…"}},"event":
 * "tasklog: end of log, …"}`, last in a finished log.
 *
 * Streams written by tasklog before this layout hold one JSON **envelope** per event
 * (`{"offset":N,"length":L,"text":"…"}`, a `key` header first, an `end` record last); they stay
 * readable, and a writer that resumes one goes on in that layout.
 */

export const ESCAPE_PREFIX = '{"tasklog":';

/** What a stream's first event says about how to read it. */
export type StreamLayout =
  /** tasklog's plain events and escapes, or Airflow 2 (watchtower: one plain event per record). */
  | 'lines'
  /** tasklog's earlier layout: every event a JSON envelope with its offset. */
  | 'envelope'
  /** Airflow 3's CloudWatchRemoteLogIO: every event a JSON object (structlog's event dict). */
  | 'airflow3';

/** One event of a stream, decoded. */
export type StreamItem =
  | { kind: 'data'; record: LogRecord }
  | { kind: 'header'; key: unknown }
  | { kind: 'end'; size: number; sha256: string };

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * The events for one record in the `lines` layout, each message at most `maxBytes` UTF-8 bytes.
 * A record whose escape would be larger (JSON escaping can make a piece up to six times its
 * size) is cut in two, never inside a character, until every piece fits.
 */
export function encodeRecord(
  record: LogRecord,
  maxBytes: number,
  encode: (record: LogRecord) => string = lineMessage,
): { record: LogRecord; message: string; bytes: number }[] {
  const message = encode(record);
  // A plain event is the line's text: its size is the record's, less the `\n`.
  const bytes = message === record.text ? record.length - 1 : Buffer.byteLength(message);
  if (bytes <= maxBytes) return [{ record, message, bytes }];
  const parts = splitRecord(record);
  if (!parts) {
    throw new RangeError(`a ${record.length}-byte record does not fit in ${maxBytes} bytes`);
  }
  return parts.flatMap((part) => encodeRecord(part, maxBytes, encode));
}

/** The message of one record: its text when a plain event can carry it, else an escape. */
export function lineMessage(record: LogRecord): string {
  const text = record.text;
  const endsLine = text !== undefined && record.length === Buffer.byteLength(text) + 1;
  if (endsLine && text !== '' && !text.startsWith(ESCAPE_PREFIX)) {
    if (record.offset > 0 || jsonObject(text) === undefined) return text;
  }
  const meta: Record<string, unknown> = { offset: record.offset, length: record.length };
  if (record.base64 !== undefined) {
    meta.base64 = record.base64;
    return escapeMessage(meta, { event: Buffer.from(record.base64, 'base64').toString('utf8') });
  }
  const line = text ?? '';
  const fields = jsonObject(line);
  if (fields && typeof fields.event === 'string') {
    // A structured line (Airflow 3's own JSON): Airflow 3 shows this escape as it shows the line.
    const { tasklog: _ours, ...rest } = fields;
    meta.text = line;
    return escapeMessage(meta, rest);
  }
  return escapeMessage(meta, { event: line });
}

/** The header: names the attempt when the stream's name cannot (see names.ts). */
export function headerMessage(key: AttemptKey): string {
  const map = key.mapIndex >= 0 ? ` map_index=${key.mapIndex}` : '';
  return escapeMessage(
    {
      key: {
        dagId: key.dagId,
        runId: key.runId,
        taskId: key.taskId,
        mapIndex: key.mapIndex,
        tryNumber: key.tryNumber,
      },
    },
    {
      event: `tasklog: log of dag_id=${key.dagId} run_id=${key.runId} task_id=${key.taskId}${map} try_number=${key.tryNumber}`,
    },
  );
}

/** The last event of a finished log. */
export function endMessage(size: number, sha256: string): string {
  return escapeMessage(
    { end: { size, sha256 } },
    { event: `tasklog: end of log, ${size} bytes, sha256 ${sha256}` },
  );
}

function escapeMessage(meta: Record<string, unknown>, fields: Record<string, unknown>): string {
  // `tasklog` first: the prefix is how readers and writers recognise an escape.
  return JSON.stringify({ tasklog: meta, ...fields });
}

/** The earlier layout, for writers that resume a stream written in it. */
export const envelope = {
  record: (r: LogRecord) => JSON.stringify(r),
  header: (k: AttemptKey) =>
    JSON.stringify({
      offset: 0,
      length: 0,
      key: {
        dagId: k.dagId,
        runId: k.runId,
        taskId: k.taskId,
        mapIndex: k.mapIndex,
        tryNumber: k.tryNumber,
      },
    }),
  end: (size: number, sha256: string) =>
    JSON.stringify({ offset: size, length: 0, end: true, sha256 }),
};

// ---------------------------------------------------------------------------------------------
// Reading

/** The layout of a stream, from its first message (`undefined`: the stream is empty). */
export function classifyStream(first: string | undefined): StreamLayout {
  if (first === undefined) return 'lines';
  if (first.startsWith(ESCAPE_PREFIX) && parseEscape(first) !== undefined) return 'lines';
  const object = jsonObject(first);
  if (object === undefined) return 'lines';
  return parseEnvelope(first)?.kind === 'header' ? 'envelope' : 'airflow3';
}

/**
 * Turns a stream's messages, in stream order, into items: each plain event a line at the offset
 * counted so far, each escape at the offset it carries (the count goes on from there).
 */
export class StreamDecoder {
  #position = 0;
  constructor(readonly layout: StreamLayout) {}

  /** The offset just past the last record decoded. */
  get position(): number {
    return this.#position;
  }

  decode(message: string | undefined): StreamItem | undefined {
    const item = peekEvent(this.layout, message);
    if (item?.kind === 'plain') {
      const record: LogRecord = { offset: this.#position, length: item.length, text: item.text };
      this.#position += record.length;
      return { kind: 'data', record };
    }
    if (item?.kind === 'data' && this.layout === 'lines') {
      this.#position = item.record.offset + item.record.length;
    }
    return item;
  }
}

/**
 * One event on its own (as a backward scan meets them): an escape's or envelope's item, or the
 * line a plain event stands for, whose offset only a count from the head can tell.
 */
export function peekEvent(
  layout: StreamLayout,
  message: string | undefined,
): StreamItem | { kind: 'plain'; text: string; length: number } | undefined {
  if (typeof message !== 'string' || message === '') return undefined;
  if (layout === 'envelope') return parseEnvelope(message);
  if (layout === 'lines' && message.startsWith(ESCAPE_PREFIX)) {
    const item = parseEscape(message);
    if (item) return item;
  }
  const text = layout === 'airflow3' ? airflow3Text(message) : message;
  return { kind: 'plain', text, length: Buffer.byteLength(text) + 1 };
}

/**
 * The line Airflow 3 shows for one of its own events: the `event` of a JSON object that has a
 * string one, else the message as it is.
 */
export function airflow3Text(message: string): string {
  const object = jsonObject(message);
  return object && typeof object.event === 'string' ? object.event : message;
}

function parseEscape(message: string): StreamItem | undefined {
  const object = jsonObject(message);
  const meta = object?.tasklog;
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return undefined;
  const m = meta as Record<string, unknown>;
  if (m.key !== undefined)
    return typeof m.key === 'object' && m.key !== null ? { kind: 'header', key: m.key } : undefined;
  if (m.end !== undefined) {
    const end = m.end as { size?: unknown; sha256?: unknown } | null;
    if (
      isOffset(end?.size) &&
      typeof end?.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(end.sha256)
    ) {
      return { kind: 'end', size: end.size, sha256: end.sha256 };
    }
    return undefined;
  }
  if (!isOffset(m.offset) || !isOffset(m.length) || m.length === 0) return undefined;
  const record: LogRecord = { offset: m.offset, length: m.length };
  if (typeof m.base64 === 'string') record.base64 = m.base64;
  else if (typeof m.text === 'string') record.text = m.text;
  else if (typeof object?.event === 'string') record.text = object.event;
  else return undefined;
  return { kind: 'data', record };
}

/** One event of the envelope layout, or undefined for anything else. */
function parseEnvelope(message: string): StreamItem | undefined {
  if (!message.startsWith('{')) return undefined;
  const v = jsonObject(message);
  if (!v || !isOffset(v.offset) || !isOffset(v.length)) return undefined;
  if (v.length === 0) {
    if (v.end === true && typeof v.sha256 === 'string' && /^[0-9a-f]{64}$/.test(v.sha256)) {
      return { kind: 'end', size: v.offset, sha256: v.sha256 };
    }
    if (v.offset === 0 && typeof v.key === 'object' && v.key !== null)
      return { kind: 'header', key: v.key };
    return undefined;
  }
  const record: LogRecord = { offset: v.offset, length: v.length };
  if (typeof v.text === 'string') record.text = v.text;
  else if (typeof v.base64 === 'string') record.base64 = v.base64;
  else return undefined;
  return { kind: 'data', record };
}

/** `text` parsed, when it is a JSON object (what Python's `json.loads` makes a dict of). */
function jsonObject(text: string): Record<string, unknown> | undefined {
  const start = text.trimStart();
  if (!start.startsWith('{')) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function isOffset(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
