import type { LogChunk } from '@tasklog/core';

/** A line longer than this is searched in windows of this many bytes, from the line's start. */
export const SEARCH_WINDOW = 64 * 1024;
/** The most bytes one region holds, so one region's work stays short. */
const REGION_MAX = 1024 * 1024;

/**
 * A run of the log that holds whole pieces: lines (each ended by `\n`, but maybe the log's last)
 * and windows of longer lines. A region never cuts a piece, so searching region by region finds
 * what searching the whole log line by line would.
 */
export interface LogRegion {
  /** Byte offset of `bytes[0]`. */
  offset: number;
  bytes: Buffer;
  /** Start of the line `bytes[0]` is in: `offset`, unless the region goes on a longer line. */
  lineOffset: number;
}

/** One line, or one window of a longer line, as offsets into its region's bytes. */
export interface Piece {
  start: number;
  /** End of the searched text: before the `\n` (and a `\r` before it). */
  end: number;
  /** Where the next piece starts. */
  next: number;
  /** Byte offset of the start of the line the piece is in. */
  lineOffset: number;
}

/**
 * How many leading bytes of `data` (at `offset`, in a line starting at `lineStart`) are whole
 * pieces, at most `max`; 0 when none is complete yet.
 */
function wholePieces(data: Buffer, offset: number, lineStart: number, max: number): number {
  const limit = Math.min(data.length, max);
  const nl = limit > 0 ? data.lastIndexOf(10, limit - 1) : -1;
  const cut = nl + 1;
  const openLine = nl >= 0 ? offset + cut : lineStart;
  // The windows of the line still open at `cut` are complete too, once a byte follows them: a
  // line of exactly one window is one piece, not a window and an empty rest.
  const windows =
    Math.max(0, Math.floor((offset + limit - openLine - 1) / SEARCH_WINDOW)) * SEARCH_WINDOW;
  return Math.max(cut, openLine + windows - offset);
}

/** Start of the line that is open after `bytes` (a region's) end. */
function lineStartAfter(region: LogRegion): number {
  const nl = region.bytes.lastIndexOf(10);
  return nl >= 0 ? region.offset + nl + 1 : region.lineOffset;
}

/**
 * The log's bytes from `start` (taken as a line's start) as regions of whole pieces. Holds at
 * most one chunk and less than one window besides, whatever the log or its lines' length.
 */
export async function* logRegions(
  chunks: AsyncIterable<LogChunk>,
  start: number,
): AsyncGenerator<LogRegion> {
  let carry = Buffer.alloc(0);
  let offset = start;
  let lineStart = start;
  for await (const chunk of chunks) {
    let data = Buffer.from(chunk.bytes.buffer, chunk.bytes.byteOffset, chunk.bytes.length);
    if (carry.length > 0) {
      // The open line goes on in this chunk: only its first bytes are copied next to it (two
      // windows always hold a piece's end), never the whole chunk.
      const bridge = Buffer.concat([carry, data.subarray(0, 2 * SEARCH_WINDOW)]);
      const cut = wholePieces(bridge, offset, lineStart, bridge.length);
      if (cut === 0) {
        carry = bridge;
        continue;
      }
      const region = { offset, bytes: bridge.subarray(0, cut), lineOffset: lineStart };
      yield region;
      lineStart = lineStartAfter(region);
      offset += cut;
      data = data.subarray(cut - carry.length);
    }
    for (;;) {
      const cut = wholePieces(data, offset, lineStart, REGION_MAX);
      if (cut === 0) break;
      const region = { offset, bytes: data.subarray(0, cut), lineOffset: lineStart };
      yield region;
      lineStart = lineStartAfter(region);
      offset += cut;
      data = data.subarray(cut);
    }
    // A copy: a view would keep the whole chunk alive.
    carry = Buffer.from(data);
  }
  if (carry.length > 0) yield { offset, bytes: carry, lineOffset: lineStart };
}

/** The pieces of a region, in order. */
export function piecesOf(region: LogRegion): Piece[] {
  const { bytes, offset } = region;
  const pieces: Piece[] = [];
  let lineOffset = region.lineOffset;
  let at = 0;
  while (at < bytes.length) {
    const nl = bytes.indexOf(10, at);
    const lineEnd = nl < 0 ? bytes.length : nl;
    const windowEnd =
      lineOffset +
      (Math.floor((offset + at - lineOffset) / SEARCH_WINDOW) + 1) * SEARCH_WINDOW -
      offset;
    if (windowEnd < lineEnd) {
      pieces.push({ start: at, end: windowEnd, next: windowEnd, lineOffset });
      at = windowEnd;
      continue;
    }
    const end = nl > at && bytes[nl - 1] === 13 ? nl - 1 : lineEnd;
    pieces.push({ start: at, end, next: nl < 0 ? lineEnd : nl + 1, lineOffset });
    at = nl < 0 ? lineEnd : nl + 1;
    lineOffset = offset + at;
  }
  return pieces;
}
