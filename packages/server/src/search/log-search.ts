import { type LogRegion, type Piece, piecesOf } from './log-regions.js';
import { RegexWorker } from './regex-worker.js';
import { excerpt, Utf8Cursor } from './utf8-offsets.js';

/** What to look for. */
export interface SearchQuery {
  q: string;
  /** `q` is a JavaScript regular expression rather than text. */
  regex: boolean;
  caseSensitive: boolean;
  /** Stop after this many matches. */
  limit: number;
}

/** One match; offsets are bytes into the log. */
export interface SearchMatch {
  offset: number;
  /** Start of the line the match is in. */
  lineOffset: number;
  /** The match's length in bytes. */
  length: number;
  /** The line (or its window), cut to 500 characters around the match. */
  line: string;
}

export interface SearchOutcome {
  matches: SearchMatch[];
  scannedFrom: number;
  /** Where a search for the rest resumes: a line's start (or a window's, inside a long line). */
  scannedTo: number;
  /** Whether the scan reached the end of what the store holds. */
  done: boolean;
  stopped: null | 'limit' | 'time';
}

/** A match found in a region: its piece and its bytes, relative to the region. */
interface Hit {
  piece: Piece;
  start: number;
  end: number;
  /** The match's UTF-16 index and length in the piece's text, when already known. */
  chars?: [number, number];
}

/**
 * Finds up to `cap` hits in a region, in order. `cutAt` (bytes into the region, a piece's start)
 * is where the search stopped when `stop` aborted before the region was searched through.
 */
type RegionMatcher = (
  region: LogRegion,
  cap: number,
  stop: AbortSignal,
) => Promise<{ hits: Hit[]; cutAt?: number }>;

/** The piece holding byte `at` of the region (pieces are in order and cover it). */
function pieceAt(pieces: Piece[], at: number): Piece {
  let lo = 0;
  let hi = pieces.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (pieces[mid]!.start <= at) lo = mid;
    else hi = mid - 1;
  }
  return pieces[lo]!;
}

/**
 * Plain text searched with the native `indexOf`: case-sensitively in the bytes themselves;
 * ignoring case (for an ASCII `q`) in the region read as Latin-1 and lower-cased, one character
 * per byte, so offsets stay byte offsets. Lower-casing Latin-1 keeps every character one
 * character and turns no other byte into an ASCII letter, and both steps are native (folding
 * bytes in a JavaScript loop measured twice as slow).
 */
function bytesMatcher(q: string, caseSensitive: boolean): RegionMatcher {
  const needle = Buffer.from(caseSensitive ? q : q.toLowerCase(), 'utf8');
  const lowerNeedle = q.toLowerCase();
  return async (region, cap) => {
    const bytes = region.bytes;
    const folded = caseSensitive ? undefined : bytes.toString('latin1').toLowerCase();
    const find = folded
      ? (from: number) => folded.indexOf(lowerNeedle, from)
      : (from: number) => bytes.indexOf(needle, from);
    const hits: Hit[] = [];
    let pieces: Piece[] | undefined;
    for (let at = find(0); at >= 0 && hits.length < cap; ) {
      pieces ??= piecesOf(region);
      const piece = pieceAt(pieces, at);
      // A match across a window's end, or into the line's `\r`, is not one within a piece.
      if (at + needle.length > piece.end) {
        at = find(at + 1);
        continue;
      }
      hits.push({ piece, start: at, end: at + needle.length });
      at = find(at + needle.length);
    }
    return { hits };
  };
}

/** A regular expression (or text with a case-insensitive Unicode `q`), matched on a worker. */
function textMatcher(worker: RegexWorker): RegionMatcher {
  return async (region, cap, stop) => {
    const pieces = piecesOf(region);
    const texts = pieces.map((p) => region.bytes.toString('utf8', p.start, p.end));
    const { found, upTo, complete } = await worker.match(texts, cap, stop);
    const hits: Hit[] = [];
    let cursor: Utf8Cursor | undefined;
    let cursorOf = -1;
    for (let i = 0; i < found.length; i += 3) {
      const [index, start, length] = [found[i]!, found[i + 1]!, found[i + 2]!];
      const piece = pieces[index]!;
      if (cursorOf !== index) {
        cursor = new Utf8Cursor(region.bytes.subarray(piece.start, piece.end));
        cursorOf = index;
      }
      const from = cursor!.byteAt(start);
      const to = cursor!.byteAt(start + length, true);
      hits.push({
        piece,
        start: piece.start + from,
        end: piece.start + to,
        chars: [start, length],
      });
    }
    if (complete) return { hits };
    return { hits, cutAt: upTo === 0 ? 0 : pieces[upTo - 1]!.next };
  };
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function toMatch(region: LogRegion, hit: Hit): SearchMatch {
  const { piece } = hit;
  const text = region.bytes.toString('utf8', piece.start, piece.end);
  const [start, length] = hit.chars ?? [
    region.bytes.toString('utf8', piece.start, hit.start).length,
    region.bytes.toString('utf8', hit.start, hit.end).length,
  ];
  return {
    offset: region.offset + hit.start,
    lineOffset: piece.lineOffset,
    length: hit.end - hit.start,
    line: excerpt(text, start, length),
  };
}

/** A search ready to run: its query checked and its matcher chosen. */
export interface SearchPlan {
  readonly query: SearchQuery;
  readonly find: RegionMatcher;
  /** Whether it matches on a worker thread (a regular expression, or Unicode case folding). */
  readonly onWorker: boolean;
  /** Ends the worker, if one was started. */
  close(): void;
}

/**
 * Checks `query` and picks how to match it: plain text as bytes in place; a regular expression,
 * or text to match ignoring case beyond ASCII, on a worker thread (started on first use).
 * Throws InvalidInputError for an invalid regular expression.
 */
export function planSearch(query: SearchQuery): SearchPlan {
  const plain = !query.regex && (query.caseSensitive || /^[\x00-\x7f]*$/.test(query.q));
  if (plain) {
    return {
      query,
      find: bytesMatcher(query.q, query.caseSensitive),
      onWorker: false,
      close: () => undefined,
    };
  }
  const worker = new RegexWorker(
    query.regex ? query.q : escapeRegExp(query.q),
    query.caseSensitive ? 'g' : 'gi',
  );
  return { query, find: textMatcher(worker), onWorker: true, close: () => worker.close() };
}

/**
 * Searches the regions of a log read from `from`, line by line (a line longer than 64 KiB in
 * windows), until the end, `query.limit` matches or `stop` aborts (the time limit, or nobody
 * waiting for the answer). Matches of one line are taken together: when a line would pass the
 * limit the search stops before it, so resuming at `scannedTo` finds it whole (unless that one
 * line alone holds more than the limit). Closes the plan.
 */
export async function searchLog(
  regions: AsyncIterable<LogRegion>,
  from: number,
  plan: SearchPlan,
  stop: AbortSignal,
): Promise<SearchOutcome> {
  const { query, find } = plan;
  const matches: SearchMatch[] = [];
  let scannedTo = from;
  const outcome = (done: boolean, stopped: SearchOutcome['stopped']): SearchOutcome => ({
    matches,
    scannedFrom: from,
    scannedTo,
    done,
    stopped,
  });
  try {
    for await (const region of regions) {
      if (stop.aborted) return outcome(false, 'time');
      const { hits, cutAt } = await find(region, query.limit - matches.length + 1, stop);
      for (let i = 0; i < hits.length; ) {
        const piece = hits[i]!.piece;
        let j = i;
        while (j < hits.length && hits[j]!.piece === piece) j++;
        const room = query.limit - matches.length;
        if (j - i > room && matches.length > 0) {
          scannedTo = region.offset + piece.start;
          return outcome(false, 'limit');
        }
        for (const hit of hits.slice(i, i + Math.min(j - i, room))) {
          matches.push(toMatch(region, hit));
        }
        if (matches.length === query.limit) {
          scannedTo = region.offset + piece.next;
          return outcome(false, 'limit');
        }
        i = j;
      }
      if (cutAt !== undefined) {
        scannedTo = region.offset + cutAt;
        return outcome(false, 'time');
      }
      scannedTo = region.offset + region.bytes.length;
    }
    return outcome(true, null);
  } catch (err) {
    // `stop` also aborts the store's read: either way, the time is up.
    if (stop.aborted && isAbort(err)) {
      return outcome(false, 'time');
    }
    throw err;
  } finally {
    plan.close();
  }
}

function isAbort(err: unknown): boolean {
  const e = err as { name?: unknown; code?: unknown } | null;
  return e?.name === 'AbortError' || e?.code === 'ABORTED' || e?.code === 'ABORT_ERR';
}
