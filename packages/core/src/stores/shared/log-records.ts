import { isUtf8 } from 'node:buffer';
import { IntegrityError } from '../../errors.js';
import type { LogChunk } from '../../store.js';

/**
 * The unit every record store (CloudWatch Logs, Elasticsearch, Cloud Logging) keeps: one piece
 * of the log, normally one line. `offset` is the byte offset of its first byte; `length` is how
 * many bytes of the log it covers. The payload is the piece without a trailing `\n` (only `\n`
 * is dropped, so CRLF keeps its `\r`); when the piece ended a line, `length` is the payload's
 * byte length + 1.
 *
 * Bytes that are not valid UTF-8 cannot travel as text through JSON APIs without being replaced,
 * so such a payload is kept as `base64` instead of `text`: every byte round-trips.
 */
export interface LogRecord {
  offset: number;
  length: number;
  text?: string;
  base64?: string;
}

const NEWLINE = 0x0a;

/** A record's payload: its bytes without the line end it covers. */
export function recordPayload(record: LogRecord): Buffer {
  return record.base64 !== undefined
    ? Buffer.from(record.base64, 'base64')
    : Buffer.from(record.text ?? '', 'utf8');
}

/** Whether a record ends its line: its length counts a `\n` after the payload. */
export function endsLine(record: LogRecord): boolean {
  const payload =
    record.base64 !== undefined
      ? Buffer.byteLength(record.base64, 'base64')
      : Buffer.byteLength(record.text ?? '');
  return record.length === payload + 1;
}

/** The log bytes a record stands for. Throws IntegrityError for a malformed record. */
export function recordBytes(record: LogRecord): Buffer {
  const payload = recordPayload(record);
  if (record.length === payload.length) return payload;
  if (record.length === payload.length + 1) return Buffer.concat([payload, Buffer.from([NEWLINE])]);
  throw new IntegrityError(
    `record at offset ${record.offset} says it covers ${record.length} bytes but carries ${payload.length}`,
  );
}

/**
 * Cuts a byte stream into records: one per line, and a line longer than `maxPieceBytes` into
 * several, never inside a UTF-8 character. Holds at most one unfinished line piece
 * (< maxPieceBytes) between calls.
 */
export class RecordSplitter {
  #offset: number;
  #carry: Buffer = Buffer.alloc(0);
  readonly maxPieceBytes: number;

  constructor(startOffset: number, maxPieceBytes: number) {
    if (!Number.isSafeInteger(maxPieceBytes) || maxPieceBytes < 4) {
      throw new RangeError(`maxPieceBytes must be an integer >= 4, got ${maxPieceBytes}`);
    }
    this.#offset = startOffset;
    this.maxPieceBytes = maxPieceBytes;
  }

  /** Offset of the first byte not yet in a record. */
  get offset(): number {
    return this.#offset;
  }

  /** Bytes held back: an unfinished line, not yet a record. */
  get pending(): number {
    return this.#carry.length;
  }

  /** Records for every complete line in `bytes` (plus what was carried), and long-line pieces. */
  push(bytes: Uint8Array): LogRecord[] {
    // A view of the caller's bytes: records keep strings, and the carry is copied below.
    const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out: LogRecord[] = [];
    let start = 0;
    let rest: Buffer | undefined;
    if (this.#carry.length > 0) {
      // Only the carried line is joined, not the whole chunk.
      const nl = chunk.indexOf(NEWLINE);
      if (nl < 0) rest = Buffer.concat([this.#carry, chunk]);
      else {
        this.#emitLine(Buffer.concat([this.#carry, chunk.subarray(0, nl)]), true, out);
        start = nl + 1;
      }
    }
    if (rest === undefined) {
      for (let nl = chunk.indexOf(NEWLINE, start); nl >= 0; nl = chunk.indexOf(NEWLINE, start)) {
        this.#emitLine(chunk.subarray(start, nl), true, out);
        start = nl + 1;
      }
      rest = chunk.subarray(start);
    }
    // An unfinished line that reached the piece limit goes out now, so memory stays bounded.
    while (rest.length >= this.maxPieceBytes) {
      const cut = charBoundary(rest, this.maxPieceBytes);
      out.push(this.#record(rest.subarray(0, cut), false));
      rest = rest.subarray(cut);
    }
    this.#carry = Buffer.from(rest);
    return out;
  }

  /**
   * Records for the unfinished line too: a flush of a running log makes every appended byte
   * durable. An incomplete UTF-8 character at the very end (its last bytes not appended yet)
   * goes out as a record of its own, base64, so the text before it stays readable text.
   */
  flush(): LogRecord[] {
    const rest = this.#carry;
    this.#carry = Buffer.alloc(0);
    const cut = incompleteTail(rest);
    const out: LogRecord[] = [];
    if (cut > 0) out.push(this.#record(rest.subarray(0, cut), false));
    if (cut < rest.length) out.push(this.#record(rest.subarray(cut), false));
    return out;
  }

  /** Everything still held, as records (the log has ended). */
  end(): LogRecord[] {
    const rest = this.#carry;
    this.#carry = Buffer.alloc(0);
    return rest.length ? [this.#record(rest, false)] : [];
  }

  #emitLine(line: Buffer, eol: boolean, out: LogRecord[]) {
    let rest = line;
    while (rest.length > this.maxPieceBytes) {
      const cut = charBoundary(rest, this.maxPieceBytes);
      out.push(this.#record(rest.subarray(0, cut), false));
      rest = rest.subarray(cut);
    }
    out.push(this.#record(rest, eol));
  }

  #record(payload: Buffer, eol: boolean): LogRecord {
    const record: LogRecord = { offset: this.#offset, length: payload.length + (eol ? 1 : 0) };
    if (isUtf8(payload)) record.text = payload.toString('utf8');
    else record.base64 = payload.toString('base64');
    this.#offset += record.length;
    return record;
  }
}

/**
 * A record cut in two near its middle, never inside a UTF-8 character (for a record whose
 * encoded form is too large for one backend entry); undefined for a payload under 2 bytes.
 */
export function splitRecord(record: LogRecord): [LogRecord, LogRecord] | undefined {
  const payload =
    record.base64 !== undefined
      ? Buffer.from(record.base64, 'base64')
      : Buffer.from(record.text ?? '', 'utf8');
  if (payload.length < 2) return undefined;
  const eol = record.length === payload.length + 1;
  const cut = charBoundary(payload, payload.length >> 1) || payload.length >> 1;
  const piece = (offset: number, bytes: Buffer, endsLine: boolean): LogRecord => {
    const r: LogRecord = { offset, length: bytes.length + (endsLine ? 1 : 0) };
    if (isUtf8(bytes)) r.text = bytes.toString('utf8');
    else r.base64 = bytes.toString('base64');
    return r;
  };
  return [
    piece(record.offset, payload.subarray(0, cut), false),
    piece(record.offset + cut, payload.subarray(cut), eol),
  ];
}

/** The largest cut <= max that does not split a UTF-8 character (max itself for invalid bytes). */
function charBoundary(bytes: Buffer, max: number): number {
  for (let cut = max; cut > max - 4 && cut > 0; cut--) {
    if ((bytes[cut]! & 0xc0) !== 0x80) return cut;
  }
  return max;
}

/** Length of `bytes` without a trailing incomplete (but so far valid) UTF-8 sequence. */
function incompleteTail(bytes: Buffer): number {
  for (let back = 1; back <= 3 && back <= bytes.length; back++) {
    const b = bytes[bytes.length - back]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? bytes.length - back : bytes.length;
  }
  return bytes.length;
}

/**
 * Turns records read from a backend — in roughly offset order, possibly repeated (at-least-once
 * storage) — into the log's bytes from `start`, in order, each byte once. A record that
 * overlaps `start` is trimmed. Records that arrive ahead of a gap wait, up to `maxWaitingBytes`;
 * past that the order is too far off to repair and IntegrityError is thrown.
 */
export class RecordAssembler {
  #next: number;
  readonly #waiting = new Map<number, LogRecord>();
  #waitingBytes = 0;
  readonly maxWaitingBytes: number;

  constructor(start: number, maxWaitingBytes = 32 * 1024 * 1024) {
    this.#next = start;
    this.maxWaitingBytes = maxWaitingBytes;
  }

  /** The offset of the first byte not yet returned. */
  get next(): number {
    return this.#next;
  }

  /** Records that wait behind a gap. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** Adds one record; returns the chunks that are now in order. */
  add(record: LogRecord): LogChunk[] {
    if (record.offset + record.length <= this.#next) return []; // already returned
    if (record.offset > this.#next) {
      if (!this.#waiting.has(record.offset)) {
        this.#waiting.set(record.offset, record);
        this.#waitingBytes += record.length;
        if (this.#waitingBytes > this.maxWaitingBytes) {
          throw new IntegrityError(
            `records after offset ${this.#next} are missing or too far out of order (${this.#waitingBytes} bytes waiting)`,
          );
        }
      }
      return [];
    }
    const out: LogChunk[] = [];
    this.#take(record, out);
    for (let r = this.#waiting.get(this.#next); r; r = this.#waiting.get(this.#next)) {
      this.#waiting.delete(r.offset);
      this.#waitingBytes -= r.length;
      this.#take(r, out);
    }
    return out;
  }

  #take(record: LogRecord, out: LogChunk[]) {
    const bytes = recordBytes(record);
    const skip = this.#next - record.offset;
    if (skip < bytes.length) {
      out.push({ offset: this.#next, bytes: bytes.subarray(skip) });
      this.#next = record.offset + bytes.length;
    }
  }
}
