import { isUtf8 } from 'node:buffer';
import { IntegrityError } from '../../errors.js';
import { type LogRecord, recordPayload } from '../shared/log-records.js';

/**
 * The Elasticsearch document layout: what Airflow's reader shows of a line, and the fields it
 * never shows that make the log exact again.
 *
 * Airflow's `ElasticsearchTaskHandler` shows `message` (2.x) or `event` (3.x) of each document,
 * joined with "\n" in `offset` order, and nothing else of it. So the shown field holds the line
 * as Airflow should show it — without its line end, a CRLF's CR dropped, bytes that are not
 * UTF-8 as U+FFFD, and in `event` mode a line of Airflow 3's JSON task log as its `event` — and
 * these hidden fields hold the difference, each only where needed:
 *
 * - `length`: the log bytes the document covers, its line end included.
 * - `crlf: true`: the line ends with CR LF (the CR is not in the shown text).
 * - `head_skip`: the first N bytes of the shown text's UTF-8 belong to the previous document: a
 *   character a flush cut in two is shown whole in the document where it ends.
 * - `tail_base64`: bytes at the end of the document the shown text leaves to the next one (the
 *   start of a character cut by a flush, or a CR that may begin a CRLF).
 * - `raw_text` / `raw_base64`: the document's exact bytes when the shown text cannot give them
 *   back (a structured `event`; bytes that are not UTF-8).
 */

/** Hidden fields tasklog writes into line documents, besides `length`. */
export const EXACT_FIELDS = ['crlf', 'head_skip', 'tail_base64', 'raw_text', 'raw_base64'] as const;

/** Fields of a document a read needs: its place, its text and what makes it exact. */
export const SOURCE_FIELDS = [
  'log_id',
  'offset',
  'length',
  'message',
  'event',
  'encoding',
  ...EXACT_FIELDS,
  'start',
  'end',
  'sha256',
  '@timestamp',
];

/** Airflow's json fields naming the attempt. */
export const KEY_FIELDS = ['dag_id', 'task_id', 'run_id', 'map_index', 'try_number'] as const;

/** Fields of Airflow 3's task log lines that its Elasticsearch reader shows (`TASK_LOG_FIELDS`). */
export const STRUCTURED_FIELDS = ['timestamp', 'level', 'logger', 'chan'] as const;

const CR = 0x0d;
/** Dates Elasticsearch's `strict_date_optional_time` and Airflow's pydantic model both take. */
const ISO_TIMESTAMP =
  /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)$/;

/**
 * Turns records (in log order) into the bodies of line documents. It carries the bytes one
 * document could not show (an unfinished character, a CR) to the next, so that Airflow, which
 * cannot join documents, shows every character once and whole.
 */
export class LineDocumentBuilder {
  #held: Buffer;

  /**
   * @param structured in `event` mode, the fields of Airflow 3's JSON lines that may be written
   *   (those the index maps compatibly); empty for plain text.
   * @param held the bytes the previous document left unshown (a resumed writer's last line).
   */
  constructor(
    readonly messageField: 'message' | 'event',
    readonly structured: ReadonlySet<string> = new Set(),
    held: Buffer = Buffer.alloc(0),
  ) {
    this.#held = held;
  }

  /** The document body of one record: `offset` (byte offset + 1), `length`, shown text, ... */
  build(record: LogRecord): Record<string, unknown> {
    const held = this.#held;
    const { text } = record;
    if (text !== undefined && held.length === 0 && this.messageField === 'message') {
      // The common case, kept cheap: a whole line of valid UTF-8 shows exactly as its text (a CR
      // before the line end aside); nothing is held back or hidden.
      const eol = record.length === Buffer.byteLength(text) + 1;
      if (eol) {
        const crlf = text.endsWith('\r');
        const body: Record<string, unknown> = {
          offset: record.offset + 1,
          length: record.length,
          message: crlf ? text.slice(0, -1) : text,
        };
        if (crlf) body.crlf = true;
        return body;
      }
    }
    const payload = recordPayload(record);
    const eol = record.length === payload.length + 1;
    const full = held.length ? Buffer.concat([held, payload]) : payload;
    const keep = eol ? 0 : unshownTail(full);
    this.#held = Buffer.from(full.subarray(full.length - keep));
    let shownBytes = full.subarray(0, full.length - keep);
    const stripCr = eol && shownBytes.at(-1) === CR;
    if (stripCr) shownBytes = shownBytes.subarray(0, -1);
    const shown = shownBytes.toString('utf8');
    const body: Record<string, unknown> = { offset: record.offset + 1, length: record.length };
    const fields =
      this.messageField === 'event' && eol && held.length === 0
        ? structuredLine(shown, this.structured)
        : undefined;
    if (fields) Object.assign(body, fields);
    else body[this.messageField] = shown;
    // The hidden fields that give the payload back from the shown text; kept only if they do
    // (replaced bytes, a structured line and held bytes the text cannot show make it raw).
    const crlf = stripCr && payload.length > 0;
    const skip = Math.min(held.length, shownBytes.length);
    const tail = payload.subarray(payload.length - Math.min(keep, payload.length));
    const rebuilt = Buffer.concat([
      Buffer.from(shown).subarray(skip),
      crlf ? Buffer.from([CR]) : Buffer.alloc(0),
      tail,
    ]);
    if (!fields && rebuilt.equals(payload)) {
      if (crlf) body.crlf = true;
      if (skip) body.head_skip = skip;
      if (tail.length) body.tail_base64 = tail.toString('base64');
    } else if (isUtf8(payload)) body.raw_text = payload.toString('utf8');
    else body.raw_base64 = payload.toString('base64');
    return body;
  }
}

/** What a resumed writer's builder holds: the unshown end of the last line, if unfinished. */
export function heldBytes(lastBytes: Buffer, lastEndedLine: boolean): Buffer {
  if (lastEndedLine) return Buffer.alloc(0);
  return Buffer.from(lastBytes.subarray(lastBytes.length - unshownTail(lastBytes)));
}

/**
 * How many bytes at the end of an unfinished piece wait for the next one: an incomplete (so far
 * valid) UTF-8 character, or a CR that a LF may follow.
 */
function unshownTail(bytes: Buffer): number {
  const n = bytes.length;
  if (n === 0) return 0;
  if (bytes[n - 1] === CR) return 1;
  for (let back = 1; back <= 3 && back <= n; back++) {
    const b = bytes[n - back]!;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: its lead is further back
    const need = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 ? 4 : 0;
    return need > back && b <= 0xf4 ? back : 0;
  }
  return 0;
}

/**
 * A line of Airflow 3's JSON task log (`{"timestamp", "level", "event", "logger", ...}`) as the
 * fields Airflow itself indexes (`_parse_raw_log`) and its reader shows; undefined for any
 * other line, which is shown as it is (as Airflow 3's file reader does when a line does not
 * validate).
 */
function structuredLine(
  line: string,
  allowed: ReadonlySet<string>,
): Record<string, string> | undefined {
  if (!line.startsWith('{') || !line.endsWith('}')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.event !== 'string') return undefined;
  if (v.timestamp !== undefined && v.timestamp !== null) {
    if (typeof v.timestamp !== 'string' || !ISO_TIMESTAMP.test(v.timestamp)) return undefined;
  }
  const out: Record<string, string> = { event: v.event };
  for (const f of STRUCTURED_FIELDS) {
    if (allowed.has(f) && typeof v[f] === 'string') out[f] = v[f] as string;
  }
  return out;
}

/**
 * The record a tasklog line document stands for. Reads the hidden fields above, and documents of
 * older tasklog versions (the text with its CR in the shown field; `encoding: "base64"`).
 * Throws IntegrityError for a malformed document.
 */
export function documentRecord(s: Record<string, unknown>, messageField: string): LogRecord {
  const offset = Number(s.offset) - 1;
  const length = Number(s.length);
  const text = s[messageField] ?? s.message ?? s.event;
  const malformed = () =>
    new IntegrityError(
      `document of log ${String(s.log_id)} at offset ${String(s.offset)} is malformed`,
    );
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw malformed();
  }
  if (typeof s.raw_base64 === 'string') return { offset, length, base64: s.raw_base64 };
  if (typeof s.raw_text === 'string') return { offset, length, text: s.raw_text };
  if (typeof text !== 'string') throw malformed();
  if (s.encoding === 'base64') return { offset, length, base64: text };
  const skip = typeof s.head_skip === 'number' ? s.head_skip : 0;
  const tail = typeof s.tail_base64 === 'string' ? s.tail_base64 : '';
  const cr = s.crlf === true ? '\r' : '';
  if (skip === 0 && tail === '') return { offset, length, text: text + cr };
  const bytes = Buffer.concat([
    Buffer.from(text).subarray(skip),
    Buffer.from(cr),
    Buffer.from(tail, 'base64'),
  ]);
  return { offset, length, base64: bytes.toString('base64') };
}

/**
 * Reads a log Airflow's own shippers indexed (documents without `length`: Filebeat or Fluentd
 * shipping `write_stdout` JSON lines with nanosecond `offset`s, Airflow 3's `write_to_es` with
 * a counter from 1) as Airflow's reader shows it: the messages in `offset` order joined with
 * "\n", up to the end-of-log mark. The bytes tasklog serves are that text, so a log that is
 * still growing only ever grows at its end. A document repeated by at-least-once shipping (the
 * same `offset` and text: Filebeat re-sending after a restart, Airflow 3 uploading a resumed
 * try's whole log again) counts once.
 */
export class AirflowLogJoiner {
  #size = 0;
  #lines = 0;
  #offsetKey: string | undefined;
  readonly #textsAtOffset = new Set<string>();

  constructor(readonly endOfLogMark: string) {}

  /**
   * One document, in `offset` order (`offsetKey`: its exact sort value). A record of the bytes
   * it adds, `end` at the end mark, or undefined for a repeated document.
   */
  add(
    offsetKey: string,
    text: string,
  ): { kind: 'record'; record: LogRecord } | { kind: 'end'; size: number } | undefined {
    if (offsetKey !== this.#offsetKey) {
      this.#offsetKey = offsetKey;
      this.#textsAtOffset.clear();
    }
    if (this.#textsAtOffset.has(text)) return undefined;
    this.#textsAtOffset.add(text);
    if (text === this.endOfLogMark) return { kind: 'end', size: this.#size };
    const shown = this.#lines++ === 0 ? text : `\n${text}`;
    const record: LogRecord = { offset: this.#size, length: Buffer.byteLength(shown), text: shown };
    this.#size += record.length;
    return { kind: 'record', record };
  }
}
