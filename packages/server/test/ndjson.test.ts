import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { splitAt } from '../../core/src/testing/logs.js';
import { NDJSON_MAX_RECORD_BYTES, NdjsonEncoder, type NdjsonRecord } from '../src/ndjson.js';

function decode(ndjson: string): NdjsonRecord[] {
  return ndjson
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as NdjsonRecord);
}

function payload(r: NdjsonRecord): Buffer {
  if ('text' in r) return Buffer.from(r.text, 'utf8');
  if ('bytes' in r) return Buffer.from(r.bytes, 'base64');
  return Buffer.alloc(0);
}

function encode(chunks: Uint8Array[], start = 0, max?: number, complete = true): NdjsonRecord[] {
  const encoder = new NdjsonEncoder(start, max);
  let out = '';
  for (const chunk of chunks) out += encoder.push(chunk);
  out += encoder.end(complete);
  return decode(out);
}

// Log-like bytes: ASCII, newlines, CRLF, 2/3/4-byte characters and invalid sequences
// (lone continuation bytes, truncated characters, overlongs, surrogates, 0xff).
const piece = fc.oneof(
  fc
    .constantFrom('a', 'Z', ' ', '\n', '\r\n', 'é', '€', '日本', '😀', '\u2028')
    .map((s) => Buffer.from(s, 'utf8')),
  fc
    .constantFrom(
      [0x80],
      [0xbf],
      [0xc3],
      [0xe2, 0x82],
      [0xf0, 0x9f, 0x98],
      [0xc0, 0xaf],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xff],
    )
    .map((b) => Buffer.from(b)),
  fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b)),
);
const logBytes = fc.array(piece, { maxLength: 200 }).map((parts) => Buffer.concat(parts));

describe('NdjsonEncoder', () => {
  it('reassembles any bytes split at any chunk boundaries exactly, with consecutive offsets', () => {
    fc.assert(
      fc.property(
        logBytes,
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.nat({ max: 1_000_000 }),
        fc.integer({ min: 4, max: 40 }),
        (bytes, cuts, start, max) => {
          const records = encode(splitAt(bytes, cuts), start, max);
          const eof = records.at(-1)!;
          expect(eof).toEqual({ offset: start + bytes.length, eof: true, complete: true });
          let at = start;
          const parts: Buffer[] = [];
          for (const r of records.slice(0, -1)) {
            expect(r.offset).toBe(at);
            const p = payload(r);
            expect(p.length).toBeGreaterThan(0);
            expect(p.length).toBeLessThanOrEqual(max);
            parts.push(p);
            at += p.length;
          }
          expect(Buffer.concat(parts).equals(bytes)).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('produces the same records however the bytes are chunked', () => {
    fc.assert(
      fc.property(logBytes, fc.array(fc.nat(), { maxLength: 20 }), (bytes, cuts) => {
        expect(encode(splitAt(bytes, cuts), 0, 16)).toEqual(encode([bytes], 0, 16));
      }),
      { numRuns: 300 },
    );
  });

  it('never cuts a valid UTF-8 character, so valid input yields only text records', () => {
    const validText = fc
      .array(fc.constantFrom('a', '\n', '\r\n', 'é', '€', '日本', '😀'), { maxLength: 200 })
      .map((parts) => Buffer.from(parts.join(''), 'utf8'));
    fc.assert(
      fc.property(
        validText,
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.integer({ min: 4, max: 40 }),
        (bytes, cuts, max) => {
          for (const r of encode(splitAt(bytes, cuts), 0, max))
            expect(r).not.toHaveProperty('bytes');
        },
      ),
      { numRuns: 300 },
    );
  });

  it('never puts a newline anywhere but at the end of a text record', () => {
    fc.assert(
      fc.property(logBytes, fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
        for (const r of encode(splitAt(bytes, cuts), 0, 32)) {
          if ('text' in r) expect(r.text.slice(0, -1)).not.toContain('\n');
        }
      }),
      { numRuns: 300 },
    );
  });

  it('sends one text record per line, including the newline', () => {
    const records = encode([Buffer.from('first line\nzwei\r\nend')], 10);
    expect(records).toEqual([
      { offset: 10, text: 'first line\n' },
      { offset: 21, text: 'zwei\r\n' },
      { offset: 27, text: 'end' },
      { offset: 30, eof: true, complete: true },
    ]);
  });

  it('carries a multi-byte character split across chunks into one text record', () => {
    const euro = Buffer.from('€\n');
    const records = encode([euro.subarray(0, 1), euro.subarray(1, 2), euro.subarray(2)]);
    expect(records).toEqual([
      { offset: 0, text: '€\n' },
      { offset: 4, eof: true, complete: true },
    ]);
  });

  it('sends invalid UTF-8 as base64 bytes between text records', () => {
    const records = encode([Buffer.from([0x61, 0xff, 0xfe, 0x62, 0x0a])]);
    expect(records).toEqual([
      { offset: 0, text: 'a' },
      { offset: 1, bytes: Buffer.from([0xff, 0xfe]).toString('base64') },
      { offset: 3, text: 'b\n' },
      { offset: 5, eof: true, complete: true },
    ]);
  });

  it('cuts a line longer than 64 KiB into records without splitting a character', () => {
    // 3-byte characters never line up with 65536, so a naive cut would split one.
    const line = Buffer.from(`${'€'.repeat(50_000)}\n`);
    const records = encode(splitAt(line, [1000, 70_000, 100_001]), 0, undefined, false);
    const texts = records.filter((r) => 'text' in r);
    expect(texts.length).toBe(3);
    for (const r of texts) {
      expect(Buffer.byteLength(r.text)).toBeLessThanOrEqual(NDJSON_MAX_RECORD_BYTES);
      expect(r.text).not.toContain('\ufffd');
    }
    expect(texts.map((r) => r.text).join('')).toBe(line.toString());
    expect(records.at(-1)).toEqual({ offset: line.length, eof: true, complete: false });
  });

  it('ends an empty log with just the eof record', () => {
    expect(encode([], 42, undefined, false)).toEqual([{ offset: 42, eof: true, complete: false }]);
  });
});

describe('NdjsonEncoder.pushShared (followers in step encode a live piece once)', () => {
  const pieces = [Buffer.from('first line\nsecond'), Buffer.from(' half\nthird line\n')];

  it('gives every encoder in step the same result, equal to its own push', () => {
    const alone = new NdjsonEncoder(0);
    const expected = pieces.map((p) => alone.push(p));
    const aloneEnd = alone.end(true);
    const followers = [new NdjsonEncoder(0), new NdjsonEncoder(0), new NdjsonEncoder(0)];
    const first = followers.map((f) => f.pushShared(pieces[0]!));
    expect(new Set(first).size).toBe(1);
    expect(first[0]!.text).toBe(expected[0]);
    // Each carries the unfinished "second" on; the next piece continues it for every one of them.
    for (const f of followers) {
      expect(f.offset).toBe(pieces[0]!.length);
      expect(f.pushShared(pieces[1]!).text).toBe(expected[1]);
      expect(f.end(true)).toBe(aloneEnd);
    }
  });

  it('encodes for itself when it is not in step', () => {
    const piece = Buffer.from('a line\n');
    const atZero = new NdjsonEncoder(0).pushShared(piece);
    const elsewhere = new NdjsonEncoder(100).pushShared(piece);
    expect(elsewhere).not.toBe(atZero);
    expect(JSON.parse(elsewhere.text)).toEqual({ offset: 100, text: 'a line\n' });
    const carrying = new NdjsonEncoder(0);
    carrying.push(Buffer.from('start of '));
    expect(JSON.parse(carrying.pushShared(piece).text)).toEqual({
      offset: 0,
      text: 'start of a line\n',
    });
  });
});
