import type { LogChunk } from '@tasklog/core';
import { IntegrityError } from '@tasklog/core';

/** One line of the NDJSON log representation. */
export type NdjsonRecord =
  /** Valid UTF-8: one log line including its `\n`, or a piece of a line longer than the limit. */
  | { offset: number; text: string }
  /** Bytes that are not valid UTF-8, base64-encoded, so nothing is lost. */
  | { offset: number; bytes: string }
  /** Always last: `offset` is the end of what was sent. */
  | { offset: number; eof: true; complete: boolean };

/** A record never carries more than this many log bytes; longer lines become several records. */
export const NDJSON_MAX_RECORD_BYTES = 64 * 1024;

const NEWLINE = 0x0a;

/** What `NdjsonEncoder.pushShared` returns: the same object for every encoder that shared it. */
export interface PushResult {
  readonly text: string;
}

/** The outcome of pushing a piece from an empty carry at `offset`, kept as long as the piece. */
const shared = new WeakMap<
  Uint8Array,
  { offset: number; maxRecordBytes: number; result: PushResult; carry: Buffer; carryOffset: number }
>();

/**
 * Turns a byte stream into NDJSON records, one per log line, each with the byte offset of its
 * first byte. Store chunks split lines (and UTF-8 characters) anywhere, so the encoder carries
 * the unfinished line across `push()` calls; the carry never exceeds `maxRecordBytes` because a
 * longer line is cut into records as soon as the limit is passed.
 *
 * Cuts of long lines depend only on the line's bytes, never on chunk boundaries, so the same log
 * always encodes to the same records however it was read.
 */
export class NdjsonEncoder {
  private carry: Buffer = Buffer.alloc(0);
  /** Log offset of `carry[0]`. */
  private carryOffset: number;
  private ended = false;

  constructor(
    startOffset: number,
    private readonly maxRecordBytes: number = NDJSON_MAX_RECORD_BYTES,
  ) {
    if (maxRecordBytes < 4) throw new RangeError('maxRecordBytes must be at least 4');
    this.carryOffset = startOffset;
  }

  /** Log offset just past the last byte pushed. */
  get offset(): number {
    return this.carryOffset + this.carry.length;
  }

  /** Encodes every complete line in `bytes` (plus the carried start); returns NDJSON text, maybe ''. */
  push(bytes: Uint8Array): string {
    if (this.ended) throw new Error('NdjsonEncoder.push() after end()');
    if (bytes.length === 0) return '';
    const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const buf = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const base = this.carryOffset;
    const out: string[] = [];
    let lineStart = 0;
    for (;;) {
      const nl = buf.indexOf(NEWLINE, lineStart);
      if (nl < 0) break;
      this.encodeLine(buf, lineStart, nl + 1, base, out);
      lineStart = nl + 1;
    }
    // Flush the unfinished line only while strictly more than the limit is known, so the cut
    // point (which looks at the byte after it) is the same as if the whole line were present.
    while (buf.length - lineStart > this.maxRecordBytes) {
      const cut = cutPoint(buf, lineStart, lineStart + this.maxRecordBytes);
      encodeRuns(buf, lineStart, cut, base, out);
      lineStart = cut;
    }
    // Copy: keeping a subarray would pin the whole (possibly large) store chunk in memory.
    this.carry = Buffer.from(buf.subarray(lineStart));
    this.carryOffset = base + lineStart;
    return out.join('');
  }

  /**
   * `push(bytes)`, shared: followers of a live attempt that are in step push the same piece from
   * the same state (nothing carried, the same offset), so the first one's result is remembered
   * with the piece and the others take it instead of encoding the piece again.
   */
  pushShared(bytes: Uint8Array): PushResult {
    if (this.carry.length > 0 || this.ended) return { text: this.push(bytes) };
    const seen = shared.get(bytes);
    if (seen && seen.offset === this.carryOffset && seen.maxRecordBytes === this.maxRecordBytes) {
      // `carry` is never changed in place, only replaced, so encoders may hold the same one.
      this.carry = seen.carry;
      this.carryOffset = seen.carryOffset;
      return seen.result;
    }
    const offset = this.carryOffset;
    const result = { text: this.push(bytes) };
    shared.set(bytes, {
      offset,
      maxRecordBytes: this.maxRecordBytes,
      result,
      carry: this.carry,
      carryOffset: this.carryOffset,
    });
    return result;
  }

  /** Flushes a last line without `\n` and appends the end-of-log record. */
  end(complete: boolean): string {
    if (this.ended) throw new Error('NdjsonEncoder.end() called twice');
    this.ended = true;
    const out: string[] = [];
    if (this.carry.length > 0)
      this.encodeLine(this.carry, 0, this.carry.length, this.carryOffset, out);
    const eof: NdjsonRecord = { offset: this.offset, eof: true, complete };
    out.push(`${JSON.stringify(eof)}\n`);
    this.carryOffset = this.offset;
    this.carry = Buffer.alloc(0);
    return out.join('');
  }

  private encodeLine(buf: Buffer, start: number, end: number, base: number, out: string[]): void {
    let s = start;
    while (end - s > this.maxRecordBytes) {
      const cut = cutPoint(buf, s, s + this.maxRecordBytes);
      encodeRuns(buf, s, cut, base, out);
      s = cut;
    }
    encodeRuns(buf, s, end, base, out);
  }
}

/**
 * Streams `chunks` (which must start at `startOffset` and be contiguous) as NDJSON text, ending
 * with the eof record. Throws IntegrityError when the store yields a chunk at an unexpected offset.
 */
export async function* encodeNdjson(
  chunks: AsyncIterable<LogChunk>,
  startOffset: number,
  complete: boolean,
): AsyncGenerator<string> {
  const encoder = new NdjsonEncoder(startOffset);
  for await (const chunk of chunks) {
    if (chunk.offset !== encoder.offset) {
      throw new IntegrityError(
        `store returned a chunk at offset ${chunk.offset}, expected ${encoder.offset}`,
      );
    }
    const text = encoder.push(chunk.bytes);
    if (text) yield text;
  }
  yield encoder.end(complete);
}

/**
 * Where to cut a too-long line near `p` (> start) without splitting a UTF-8 character: if `p`
 * falls inside a character whose lead byte is after `start`, cut before that lead byte. Only
 * bytes before and at `p` are looked at, so the answer does not depend on what is read later.
 */
function cutPoint(buf: Buffer, start: number, p: number): number {
  for (let q = p; q > start && q >= p - 3; q--) {
    const b = buf[q]!;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: keep looking for the lead byte
    return q < p && q + leadLength(b) > p ? q : p;
  }
  return p;
}

/** Bytes in the character a lead byte starts; 0 when `b` cannot start a character. */
function leadLength(b: number): number {
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

/** Length of the valid UTF-8 character at `i` (within `end`), or 0 when it is not valid. */
function validCharLength(buf: Buffer, i: number, end: number): number {
  const b0 = buf[i]!;
  const n = leadLength(b0);
  if (n <= 1) return n;
  if (i + n > end) return 0;
  const b1 = buf[i + 1]!;
  // Second-byte ranges exclude overlong forms, UTF-16 surrogates and code points > U+10FFFF.
  let lo = 0x80;
  let hi = 0xbf;
  if (b0 === 0xe0) lo = 0xa0;
  else if (b0 === 0xed) hi = 0x9f;
  else if (b0 === 0xf0) lo = 0x90;
  else if (b0 === 0xf4) hi = 0x8f;
  if (b1 < lo || b1 > hi) return 0;
  for (let k = 2; k < n; k++) {
    if ((buf[i + k]! & 0xc0) !== 0x80) return 0;
  }
  return n;
}

/** Appends records for buf[start, end): valid UTF-8 runs as `text`, invalid runs as `bytes`. */
function encodeRuns(buf: Buffer, start: number, end: number, base: number, out: string[]): void {
  let runStart = start;
  let runValid = true;
  let i = start;
  const emit = (to: number) => {
    if (to <= runStart) return;
    const record: NdjsonRecord = runValid
      ? { offset: base + runStart, text: buf.toString('utf8', runStart, to) }
      : { offset: base + runStart, bytes: buf.toString('base64', runStart, to) };
    out.push(`${JSON.stringify(record)}\n`);
  };
  while (i < end) {
    const n = validCharLength(buf, i, end);
    const valid = n > 0;
    if (valid !== runValid) {
      emit(i);
      runStart = i;
      runValid = valid;
    }
    i += valid ? n : 1;
  }
  emit(end);
}
