/**
 * Log lines cut out of byte ranges. Ranges are read in bytes (the server knows the log by byte
 * offsets, never by line), so every line keeps its byte offset: permalinks, search results and
 * the scroll position all speak in bytes.
 */

export interface LogLine {
  /** Byte offset of the line's first byte. */
  offset: number;
  /** Byte offset just past the line (past its `\n`). */
  end: number;
  /** The text, without `\n` and a trailing `\r`. */
  text: string;
  /** 1-based line number, when the lines before it were all read. */
  no?: number;
  /** A piece of a line too long to read whole that does not start at the line's start. */
  openStart?: boolean;
  /** A piece of a line too long to read whole that does not end at the line's end. */
  openEnd?: boolean;
  /** Measured height in pixels, once rendered. */
  h?: number;
}

const NEWLINE = 0x0a;
const decoder = new TextDecoder('utf-8');

/**
 * The lines in `bytes`, which start at byte `base`. Every `\n` ends a line; bytes after the last
 * one come back as `rest` (the start of a line the range did not finish).
 */
export function splitLines(bytes: Uint8Array, base: number): { lines: LogLine[]; rest: number } {
  const lines: LogLine[] = [];
  let start = 0;
  for (let i = bytes.indexOf(NEWLINE); i !== -1; i = bytes.indexOf(NEWLINE, start)) {
    lines.push(lineOf(bytes.subarray(start, i), base + start, base + i + 1));
    start = i + 1;
  }
  return { lines, rest: start };
}

export function lineOf(
  bytes: Uint8Array,
  offset: number,
  end: number,
  piece: { openStart?: boolean; openEnd?: boolean } = {},
): LogLine {
  let text = decoder.decode(bytes);
  if (text.endsWith('\r')) text = text.slice(0, -1);
  const line: LogLine = { offset, end, text };
  if (piece.openStart) line.openStart = true;
  if (piece.openEnd) line.openEnd = true;
  return line;
}

/**
 * Where a long line may be cut at or before `at` without splitting a UTF-8 character: before
 * the last character when its bytes do not all come before `at`.
 */
export function utf8Boundary(bytes: Uint8Array, at: number): number {
  const end = Math.min(at, bytes.length);
  let lead = end - 1;
  while (lead > 0 && end - lead < 4 && (bytes[lead]! & 0xc0) === 0x80) lead--;
  if (lead < 0) return end;
  const b = bytes[lead]!;
  const need = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
  return lead + need <= end ? end : lead;
}

/** The byte length of `text` in UTF-8. */
export function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
