import type { AttemptRef } from './api.js';
import { type LogLine, lineOf, splitLines, utf8Boundary } from './log-lines.js';
import { readRange } from './range-reader.js';

/**
 * How the bytes at a range's start relate to lines: `line` — a line starts there; `continue` —
 * they finish a line cut earlier (shown as a piece); `skip` — where a line starts is unknown
 * (a jump, or a read backwards), so everything up to the first line break is dropped.
 */
export type Head = 'line' | 'continue' | 'skip';

export interface LinesRead {
  lines: LogLine[];
  /** The log's size when the answer said (complete logs). */
  total: number | undefined;
  /** Bytes the server had: `to` clipped to what a running attempt's archive holds. */
  got: number;
}

/**
 * Reads [from, to) and returns the whole lines in it. A line with no break in the whole range
 * (longer than the range) comes back as one `cut` piece, so the view always makes progress.
 * `endsAtLine` says that `to` is a line start (the start of the lines already held, or the end of
 * the log), so the bytes before it form a last line even without a `\n`.
 */
export async function readLines(
  a: AttemptRef,
  from: number,
  to: number,
  head: Head,
  endsAtLine: boolean,
  signal?: AbortSignal,
): Promise<LinesRead> {
  const r = await readRange(a, from, to, signal);
  const bytes = r.bytes;
  const got = bytes.length;
  const end = from + got;
  const lastIsWhole = (endsAtLine && end === to) || (r.total !== undefined && end === r.total);
  if (got === 0) return { lines: [], total: r.total, got };
  let pos = 0;
  const lines: LogLine[] = [];
  if (from > 0 && head !== 'line') {
    const nl = bytes.indexOf(0x0a);
    if (nl === -1) {
      // One long line covers the whole range: show it as a piece.
      const s = head === 'continue' ? 0 : skipContinuation(bytes);
      const e = lastIsWhole ? got : utf8Boundary(bytes, got);
      const piece = { openStart: true, openEnd: !lastIsWhole };
      if (e > s) lines.push(lineOf(bytes.subarray(s, e), from + s, from + e, piece));
      return { lines, total: r.total, got };
    }
    if (head === 'continue') {
      lines.push(lineOf(bytes.subarray(0, nl), from, from + nl + 1, { openStart: true }));
    }
    pos = nl + 1;
  }
  const split = splitLines(bytes.subarray(pos), from + pos);
  lines.push(...split.lines);
  const rest = pos + split.rest;
  if (rest < got) {
    if (lastIsWhole) lines.push(lineOf(bytes.subarray(rest), from + rest, end));
    else if (lines.length === 0) {
      // No break after the line's start within the range: a piece, cut on a character boundary.
      const e = rest + utf8Boundary(bytes.subarray(rest), got - rest);
      const piece = { openEnd: true };
      if (e > rest) lines.push(lineOf(bytes.subarray(rest, e), from + rest, from + e, piece));
    }
  }
  return { lines, total: r.total, got };
}

function skipContinuation(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length && (bytes[i]! & 0xc0) === 0x80) i++;
  return i;
}
