import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { AttemptKey } from '../../attempt-key.js';
import type { LogRecord } from '../shared/log-records.js';

/**
 * The layout of tasklog's Cloud Logging entries, shared by the store and its writer.
 *
 * Labels: Airflow's task labels as StackdriverTaskHandler sets them (`dag_id`, `task_id`,
 * `try_number`, and the run's logical date as `logical_date` for Airflow 3 and
 * `execution_date` for Airflow 2, when known), tasklog's own identity (`run_id`, `map_index`:
 * Airflow's labels cannot tell runs without a logical date or mapped instances apart), and the
 * record's place in the log (`offset`, `length`).
 *
 * Payload: `jsonPayload.message` is the line as Airflow should show it — without its `\n`, a
 * CRLF's `\r` dropped (label `tasklog_cr`), bytes that are not UTF-8 as U+FFFD. Airflow's reader
 * (`_read_single_logs_page`) shows `json_payload["message"]` when present, else a non-empty
 * `text_payload`; so every provider version shows these lines, empty ones included (older
 * providers read jsonPayload only). When the message cannot give the bytes back exactly,
 * `jsonPayload.tasklog_bytes` holds them (base64). A line flushed before it ended is stored as a
 * hidden part (`tasklog_text` or `tasklog_bytes`, no `message`, so Airflow skips it) until the
 * line is complete; then one entry with the whole line covers the parts again, so Airflow shows
 * whole lines and tasklog's reader (which drops bytes it already has) reads each byte once.
 *
 * Entries written before this layout carry `textPayload` (base64 when labelled
 * `tasklog_encoding=base64`) and stay readable.
 */

/** Label names. */
export const L = {
  dagId: 'dag_id',
  runId: 'run_id',
  taskId: 'task_id',
  mapIndex: 'map_index',
  tryNumber: 'try_number',
  logicalDate: 'logical_date',
  executionDate: 'execution_date',
  offset: 'offset',
  length: 'length',
  cr: 'tasklog_cr',
  /** The earlier layout's marker of a base64 textPayload. */
  encoding: 'tasklog_encoding',
  end: 'tasklog_end',
  size: 'size',
  sha256: 'sha256',
  deleted: 'tasklog_deleted',
} as const;

/** jsonPayload fields. */
const F = { message: 'message', text: 'tasklog_text', bytes: 'tasklog_bytes' } as const;

/**
 * https://cloud.google.com/logging/quotas: a LogEntry is at most 256 KB, "approximate, based on
 * internal data sizes". Read as 256,000 bytes (below 256 KiB) and measured as the entry's JSON
 * (never smaller than its protobuf: JSON only adds quotes, names and escapes).
 */
export const MAX_ENTRY_BYTES = 256_000;
/** What the estimate does not see: protobuf framing, fields the service adds. */
const ENTRY_MARGIN_BYTES = 4096;
/**
 * The most raw bytes of the log one entry carries; a longer line is cut (never inside a
 * character), and a piece whose JSON would not fit (control characters take 6 bytes, bytes that
 * are not UTF-8 travel twice) is cut shorter.
 */
export const MAX_PIECE_BYTES = 240 * 1024;

/** A protobuf Struct as the generated client sends and returns it. */
interface Struct {
  fields?: Record<string, StructValue | null | undefined> | null;
}
interface StructValue {
  stringValue?: string | null;
  numberValue?: number | null;
  boolValue?: boolean | null;
  kind?: string | null;
}

export interface ApiTimestamp {
  seconds?: number | string | { toString(): string } | null;
  nanos?: number | null;
}

/** A LogEntry as ListLogEntries returns it (the parts read). */
export interface ApiEntry {
  logName?: string | null;
  timestamp?: ApiTimestamp | null;
  insertId?: string | null;
  labels?: Record<string, string> | null;
  textPayload?: string | null;
  jsonPayload?: Struct | null;
}

/** A LogEntry as the store sends it (the generated client's protobuf object form). */
export interface ApiEntryOut {
  timestamp: { seconds: number; nanos: number };
  insertId: string;
  labels: Record<string, string>;
  textPayload?: string;
  jsonPayload?: { fields: Record<string, { stringValue: string }> };
}

/** Airflow's logical-date labels of an attempt's run; empty when unknown. */
export interface AirflowDateLabels {
  logical_date?: string;
  execution_date?: string;
}

/** A piece of the log ready to become one entry. */
export interface EntryPiece {
  offset: number;
  length: number;
  /** Shown by Airflow (has `message`), or a hidden part of a line still being written. */
  visible: boolean;
  labels: Record<string, string>;
  payload: Record<string, string>;
}

/** Labels that name an attempt: Airflow's task labels, its logical dates and tasklog's ids. */
export function attemptLabels(key: AttemptKey, dates: AirflowDateLabels): Record<string, string> {
  return {
    [L.dagId]: key.dagId,
    [L.runId]: key.runId,
    [L.taskId]: key.taskId,
    [L.mapIndex]: String(key.mapIndex),
    [L.tryNumber]: String(key.tryNumber),
    ...(dates.logical_date !== undefined ? { [L.logicalDate]: dates.logical_date } : {}),
    ...(dates.execution_date !== undefined ? { [L.executionDate]: dates.execution_date } : {}),
  };
}

/**
 * Cuts the log into entries of one attempt that fit the service's limit. Built once per writer:
 * everything in an entry but its payload (labels, log name, resource) is measured up front, so
 * a line costs a JSON measurement only when it is long enough to come near the limit.
 */
export class EntryCutter {
  readonly #budget: number;
  readonly #maxPieceBytes: number;

  constructor(options: {
    labels: Record<string, string>;
    logName: string;
    resource: { type: string; labels: Record<string, string> };
    maxPieceBytes: number;
  }) {
    const probe = {
      logName: options.logName,
      resource: options.resource,
      timestamp: '2024-01-01T00:00:00.000000000Z',
      insertId: 'f'.repeat(32),
      labels: {
        ...options.labels,
        [L.offset]: '9'.repeat(16),
        [L.length]: '9'.repeat(16),
        [L.cr]: 'true',
      },
      severity: 0,
      jsonPayload: {},
    };
    const overhead = Buffer.byteLength(JSON.stringify(probe));
    this.#budget = Math.max(1024, MAX_ENTRY_BYTES - ENTRY_MARGIN_BYTES - overhead);
    this.#maxPieceBytes = options.maxPieceBytes;
  }

  /**
   * The entries for `bytes` at `offset` (a line or its start, without the `\n`; `eol` when the
   * `\n` follows): one, or several when the piece is too big for an entry (only the last one
   * then ends the line).
   */
  pieces(offset: number, bytes: Buffer, eol: boolean, visible: boolean): EntryPiece[] {
    const out: EntryPiece[] = [];
    let at = 0;
    do {
      const rest = bytes.subarray(at);
      const n = this.fit(rest, visible);
      const last = n === rest.length;
      const piece = rest.subarray(0, n);
      const { payload, cr } = visible ? shown(piece, last && eol) : hidden(piece);
      const length = n + (last && eol ? 1 : 0);
      out.push({
        offset: offset + at,
        length,
        visible,
        labels: {
          [L.offset]: String(offset + at),
          [L.length]: String(length),
          ...(cr ? { [L.cr]: 'true' } : {}),
        },
        payload,
      });
      at += n;
    } while (at < bytes.length);
    return out;
  }

  /**
   * The entry of a whole line that needs none of `pieces`' work (valid UTF-8, no `\r` before its
   * `\n`, small enough for one entry at any escaping), straight from the record's text: no round
   * trip through bytes. Undefined for any other record; `pieces` then does what it must.
   */
  line(record: LogRecord): EntryPiece | undefined {
    const text = record.text;
    const n = record.length - 1;
    if (text === undefined || n < 1 || n > this.#maxPieceBytes || n * 7.5 + 64 > this.#budget) {
      return undefined;
    }
    if (text.charCodeAt(text.length - 1) === 0x0d || Buffer.byteLength(text) !== n)
      return undefined;
    return {
      offset: record.offset,
      length: record.length,
      visible: true,
      labels: { [L.offset]: String(record.offset), [L.length]: String(record.length) },
      payload: { [F.message]: text },
    };
  }

  /** The longest start of `rest` (whole characters, at most maxPieceBytes) whose entry fits. */
  fit(rest: Buffer, visible: boolean): number {
    let n = Math.min(rest.length, this.#maxPieceBytes);
    for (;;) {
      n = utf8Cut(rest, n);
      // A message grows at most 6x (JSON's \u00XX), plus 4/3 for base64 bytes beside it.
      if (n * 7.5 + 64 <= this.#budget) return n;
      const piece = rest.subarray(0, n);
      const payload = visible ? shown(piece, false).payload : hidden(piece).payload;
      const cost = Buffer.byteLength(JSON.stringify(payload));
      if (cost <= this.#budget) return n;
      n = Math.max(1, Math.floor((n * this.#budget) / cost) - 8);
    }
  }
}

/** The payload Airflow shows: the message, and the exact bytes when the message differs. */
function shown(piece: Buffer, eol: boolean): { payload: Record<string, string>; cr: boolean } {
  const crlf = eol && piece.length > 0 && piece[piece.length - 1] === 0x0d;
  const text = crlf ? piece.subarray(0, -1) : piece;
  if (isUtf8(text)) return { payload: { [F.message]: text.toString('utf8') }, cr: crlf };
  // Node's decoder replaces each invalid sequence with U+FFFD, as Python's errors="replace".
  return {
    payload: { [F.message]: text.toString('utf8'), [F.bytes]: piece.toString('base64') },
    cr: false,
  };
}

/** A hidden part of a line: its bytes, and no message. */
function hidden(piece: Buffer): { payload: Record<string, string>; cr: boolean } {
  return isUtf8(piece)
    ? { payload: { [F.text]: piece.toString('utf8') }, cr: false }
    : { payload: { [F.bytes]: piece.toString('base64') }, cr: false };
}

/** The largest cut <= max that does not split a UTF-8 character (max itself in invalid bytes). */
function utf8Cut(bytes: Buffer, max: number): number {
  for (let cut = max; cut > max - 4 && cut > 0; cut--) {
    if (cut >= bytes.length || (bytes[cut]! & 0xc0) !== 0x80) return cut;
  }
  return max;
}

/** The payload as the generated client sends it: a protobuf Struct of strings. */
export function toStruct(payload: Record<string, string>): ApiEntryOut['jsonPayload'] {
  const fields: Record<string, { stringValue: string }> = {};
  for (const [k, v] of Object.entries(payload)) fields[k] = { stringValue: v };
  return { fields };
}

/** A string field of a Struct (the client's `{fields}` form, or a plain object). */
function structField(struct: Struct | null | undefined, name: string): string | undefined {
  if (!struct) return undefined;
  const fields = struct.fields;
  if (fields && typeof fields === 'object') {
    const v = fields[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v.stringValue === 'string') return v.stringValue;
    if (typeof v.numberValue === 'number') return String(v.numberValue);
    if (typeof v.boolValue === 'boolean') return v.boolValue ? 'True' : 'False';
    return '';
  }
  const plain = (struct as Record<string, unknown>)[name];
  return plain === undefined || plain === null ? undefined : String(plain);
}

/**
 * The record an entry of tasklog's stands for, and whether Airflow shows it; undefined when it
 * has no offset (not tasklog's). Old-layout entries (textPayload) count as shown.
 */
export function parseRecord(entry: ApiEntry): { record: LogRecord; visible: boolean } | undefined {
  const labels = entry.labels ?? {};
  const offset = decimal(labels[L.offset]);
  const length = decimal(labels[L.length]);
  if (offset === undefined || length === undefined) return undefined;
  const json = entry.jsonPayload;
  if (json && (json.fields ? Object.keys(json.fields).length > 0 : Object.keys(json).length > 0)) {
    const message = structField(json, F.message);
    const base64 = structField(json, F.bytes);
    if (base64 !== undefined) return { record: { offset, length, base64 }, visible: !!message };
    const text =
      (message ?? structField(json, F.text) ?? '') + (labels[L.cr] === 'true' ? '\r' : '');
    return { record: { offset, length, text }, visible: message !== undefined };
  }
  const payload = entry.textPayload ?? '';
  const record: LogRecord =
    labels[L.encoding] === 'base64'
      ? { offset, length, base64: payload }
      : { offset, length, text: payload };
  return { record, visible: true };
}

/**
 * What Airflow's `_read_single_logs_page` shows for an entry: `json_payload["message"]` when the
 * payload has that key (empty or not), else a non-empty `text_payload`; undefined = skipped.
 */
export function airflowMessage(entry: ApiEntry): string | undefined {
  const message = structField(entry.jsonPayload, F.message);
  if (message !== undefined) return message;
  return entry.textPayload ? entry.textPayload : undefined;
}

/** A marker entry (no payload Airflow shows) in the generated client's protobuf object form. */
export function markerEntry(
  labels: Record<string, string>,
  micros: number,
  id: string,
  extra: Record<string, string>,
): ApiEntryOut {
  return {
    timestamp: { seconds: Math.floor(micros / 1e6), nanos: (micros % 1e6) * 1000 },
    insertId: id,
    labels: { ...labels, ...extra },
    textPayload: '',
  };
}

/** Deterministic, so a retried or resent entry de-duplicates in the service. */
export function insertId(rel: string, kind: string, offset: number, length: number): string {
  return insertIds(rel)(kind, offset, length);
}

/** `insertId` of one log, with the log's part hashed once (a copy per id). */
export function insertIds(rel: string): (kind: string, offset: number, length: number) => string {
  const prefix = createHash('sha256').update(`${rel}\n`);
  return (kind, offset, length) =>
    prefix.copy().update(`${kind}\n${offset}\n${length}`).digest('hex').slice(0, 32);
}

/**
 * `log.getEntries` (and the service) restrict a filter without a timestamp condition to the last
 * 24 hours; this explicit condition keeps older attempts readable.
 */
export const ALL_TIME = 'timestamp >= "1970-01-01T00:00:00Z"';

/** A string literal of the Logging query language. */
export function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function decimal(text: string | undefined): number | undefined {
  if (text === undefined || !/^(0|[1-9][0-9]*)$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function timestampMicros(t: ApiTimestamp | null | undefined): number {
  const seconds = Number(String(t?.seconds ?? 0));
  return seconds * 1e6 + Math.floor((t?.nanos ?? 0) / 1000);
}

/** RFC 3339 with microseconds. */
export function formatMicros(micros: number): string {
  const iso = new Date(Math.floor(micros / 1000)).toISOString();
  return `${iso.slice(0, 19)}.${String(micros % 1e6).padStart(6, '0')}Z`;
}
