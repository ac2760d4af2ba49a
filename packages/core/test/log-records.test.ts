import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../src/index.js';
import {
  type LogRecord,
  RecordAssembler,
  RecordSplitter,
  recordBytes,
} from '../src/stores/shared/log-records.js';

/** Splits `bytes` pushed in `cuts` pieces, flushing where `flushes` says, then ends. */
function split(bytes: Buffer, cuts: number[], flushes: boolean[], max: number): LogRecord[] {
  const splitter = new RecordSplitter(0, max);
  const records: LogRecord[] = [];
  let at = 0;
  cuts.forEach((cut, i) => {
    const to = Math.min(bytes.length, at + cut);
    records.push(...splitter.push(bytes.subarray(at, to)));
    if (flushes[i]) records.push(...splitter.flush());
    at = to;
  });
  records.push(...splitter.push(bytes.subarray(at)), ...splitter.end());
  return records;
}

function assemble(records: LogRecord[], start = 0): Buffer {
  const assembler = new RecordAssembler(start);
  const out = records.flatMap((r) => assembler.add(r));
  out.forEach((chunk, i) => {
    if (i > 0) expect(chunk.offset).toBe(out[i - 1]!.offset + out[i - 1]!.bytes.length);
  });
  return Buffer.concat(out.map((c) => c.bytes));
}

const logBytes = fc
  .array(
    fc.oneof(
      fc.constantFrom('\n', '\r\n', 'é', '€', '𝄞', 'a', ' ', '日本'),
      fc.string({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b).toString('latin1')),
    ),
    { maxLength: 80 },
  )
  .chain((parts) =>
    fc.constant(
      Buffer.concat(
        parts.map((p, i) => (i % 7 === 3 ? Buffer.from(p, 'latin1') : Buffer.from(p, 'utf8'))),
      ),
    ),
  );

describe('RecordSplitter and RecordAssembler', () => {
  it('makes one record per line, without the newline but counting it', () => {
    const records = split(Buffer.from('a\r\nbé\n\nlast'), [], [], 1024);
    expect(records).toEqual([
      { offset: 0, length: 3, text: 'a\r' },
      { offset: 3, length: 4, text: 'bé' },
      { offset: 7, length: 1, text: '' },
      { offset: 8, length: 4, text: 'last' },
    ]);
  });

  it('keeps bytes that are not UTF-8 as base64', () => {
    const [record] = split(Buffer.from([0xff, 0xfe, 0x41, 0x0a]), [], [], 1024);
    expect(record).toEqual({
      offset: 0,
      length: 4,
      base64: Buffer.from([0xff, 0xfe, 0x41]).toString('base64'),
    });
  });

  it('cuts a long line into pieces no larger than the limit, never inside a character', () => {
    const line = Buffer.from(`${'€'.repeat(100)}\n`);
    const records = split(line, [], [], 16);
    for (const r of records) {
      expect(r.text).toBeDefined();
      expect(Buffer.byteLength(r.text!)).toBeLessThanOrEqual(16);
    }
    expect(assemble(records).equals(line)).toBe(true);
  });

  it('flushes every byte, half a character as a base64 record of its own', () => {
    const splitter = new RecordSplitter(0, 1024);
    const euro = Buffer.from('x€');
    expect(splitter.push(euro.subarray(0, 2))).toEqual([]);
    expect(splitter.flush()).toEqual([
      { offset: 0, length: 1, text: 'x' },
      { offset: 1, length: 1, base64: euro.subarray(1, 2).toString('base64') },
    ]);
    expect(splitter.pending).toBe(0);
    expect(splitter.push(euro.subarray(2))).toEqual([]);
    expect(splitter.end()).toEqual([
      { offset: 2, length: 2, base64: euro.subarray(2).toString('base64') },
    ]);
  });

  it('round-trips any bytes, however pushed and flushed, through records read in order', () => {
    fc.assert(
      fc.property(
        logBytes,
        fc.array(fc.nat(30)),
        fc.array(fc.boolean()),
        fc.integer({ min: 4, max: 64 }),
        (bytes, cuts, flushes, max) => {
          const records = split(bytes, cuts, flushes, max);
          for (const r of records) expect(recordBytes(r).length).toBe(r.length);
          expect(assemble(records).equals(bytes)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('reads as exactly-once from duplicated, slightly reordered records, from any offset', () => {
    fc.assert(
      fc.property(
        logBytes,
        fc.integer({ min: 4, max: 32 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.nat(),
        (bytes, max, noise, startSeed) => {
          const records = split(bytes, [], [], max);
          const delivered = [...records];
          // At-least-once: some records again, some swapped with their neighbour.
          for (const n of noise) {
            if (delivered.length < 2) break;
            const i = n % (delivered.length - 1);
            if (n % 2) delivered.splice(i, 0, delivered[i]!);
            else [delivered[i], delivered[i + 1]] = [delivered[i + 1]!, delivered[i]!];
          }
          const start = bytes.length ? startSeed % (bytes.length + 1) : 0;
          expect(assemble(delivered, start).equals(bytes.subarray(start))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a record whose length does not match its payload', () => {
    expect(() => recordBytes({ offset: 0, length: 9, text: 'abc' })).toThrow(IntegrityError);
  });

  it('stops at a gap and gives up when too much waits behind it', () => {
    const assembler = new RecordAssembler(0, 10);
    expect(assembler.add({ offset: 5, length: 5, text: 'fghi' + '' })).toEqual([]);
    expect(assembler.waiting).toBe(1);
    expect(() => assembler.add({ offset: 10, length: 8, text: 'klmnopqr' })).toThrow(
      IntegrityError,
    );
  });
});
