import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { splitAt } from '../../core/src/testing/logs.js';
import { logRegions, piecesOf, SEARCH_WINDOW } from '../src/search/log-regions.js';
import { excerpt, Utf8Cursor } from '../src/search/utf8-offsets.js';

type Span = [start: number, end: number, lineOffset: number];

/** The pieces of `bytes` read from `from`, straight from the definition: lines, then windows. */
function referencePieces(bytes: Buffer, from: number): Span[] {
  const spans: Span[] = [];
  let line = from;
  while (line < bytes.length) {
    const nl = bytes.indexOf(10, line);
    const end = nl < 0 ? bytes.length : nl;
    let at = line;
    while (end - at > SEARCH_WINDOW) {
      spans.push([at, at + SEARCH_WINDOW, line]);
      at += SEARCH_WINDOW;
    }
    spans.push([at, nl > at && bytes[nl - 1] === 13 ? nl - 1 : end, line]);
    line = nl < 0 ? bytes.length : nl + 1;
  }
  return spans;
}

async function regionPieces(bytes: Buffer, from: number, cuts: number[]) {
  const parts = splitAt(bytes.subarray(from), cuts);
  let offset = from;
  const chunks = parts.map((p) => {
    const chunk = { offset, bytes: p };
    offset += p.length;
    return chunk;
  });
  async function* read() {
    yield* chunks;
  }
  const spans: Span[] = [];
  let largest = 0;
  for await (const region of logRegions(read(), from)) {
    largest = Math.max(largest, region.bytes.length);
    expect(
      region.bytes.equals(bytes.subarray(region.offset, region.offset + region.bytes.length)),
    ).toBe(true);
    for (const p of piecesOf(region)) {
      spans.push([region.offset + p.start, region.offset + p.end, p.lineOffset]);
    }
  }
  return { spans, largest };
}

/** Log text with short lines, CRLF, and lines longer than a window. */
const logText = fc
  .array(
    fc.oneof(
      fc.constantFrom('\n', '\r\n', 'é', '😀', 'INFO ok'),
      fc.integer({ min: SEARCH_WINDOW - 2, max: 3 * SEARCH_WINDOW }).map((n) => 'x'.repeat(n)),
    ),
    { maxLength: 40 },
  )
  .map((parts) => Buffer.from(parts.join('')));

describe('logRegions', () => {
  it('gives the same lines and windows however the store cuts its chunks', async () => {
    await fc.assert(
      fc.asyncProperty(
        logText,
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.nat(),
        async (bytes, cuts, start) => {
          const from = bytes.length === 0 ? 0 : start % bytes.length;
          const { spans } = await regionPieces(bytes, from, cuts);
          expect(spans).toEqual(referencePieces(bytes, from));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reads a line of exactly one window as one piece, even when a chunk ends with it', async () => {
    for (const line of ['x'.repeat(SEARCH_WINDOW), `${'x'.repeat(SEARCH_WINDOW - 1)}\r`]) {
      const bytes = Buffer.from(`${line}\nnext`);
      const { spans } = await regionPieces(bytes, 0, [SEARCH_WINDOW]);
      expect(spans).toEqual(referencePieces(bytes, 0));
      expect(spans).toHaveLength(2);
    }
  });

  it('never holds more than a MiB in one region, whatever the log', async () => {
    const bytes = Buffer.concat([
      Buffer.from('short line\n'.repeat(200_000)),
      Buffer.alloc(3 * 1024 * 1024, 'y'),
    ]);
    const { spans, largest } = await regionPieces(bytes, 0, [5_000_000]);
    expect(largest).toBeLessThanOrEqual(1024 * 1024);
    expect(spans.at(-1)).toEqual([bytes.length - SEARCH_WINDOW, bytes.length, 2_200_000]);
  });
});

describe('Utf8Cursor', () => {
  it('maps every string index of decoded bytes back to its byte, ill-formed bytes included', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.string({ unit: 'binary' }), (raw, text) => {
        const bytes = Buffer.concat([Buffer.from(raw), Buffer.from(text)]);
        const decoded = bytes.toString('utf8');
        const cursor = new Utf8Cursor(bytes);
        for (let i = 0; i <= decoded.length; i++) {
          const at = cursor.byteAt(i);
          // The bytes before `at` decode to the string before index i (up to a split pair).
          const before = bytes.subarray(0, at).toString('utf8');
          expect(decoded.startsWith(before)).toBe(true);
          expect(i - before.length).toBeLessThanOrEqual(1);
        }
      }),
    );
  });
});

describe('excerpt', () => {
  it('cuts a long line to 500 characters around the match, never inside a pair', () => {
    const line = `${'😀'.repeat(400)}MATCH${'😀'.repeat(400)}`;
    const cut = excerpt(line, 800, 5);
    expect(cut.length).toBeLessThanOrEqual(500);
    expect(cut).toContain('MATCH');
    expect(Buffer.from(cut).toString()).toBe(cut);
    expect(excerpt('short', 0, 5)).toBe('short');
  });
});
