/**
 * The few protobuf wire-format pieces WriteLogEntries needs (https://protobuf.dev/programming-guides/encoding/):
 * varints, and length-delimited fields with one-byte tags (field numbers below 16). Writers take
 * a buffer sized exactly beforehand and a position, and return the position after what they
 * wrote, so a message is measured once and written once, with no intermediate copies.
 */

/** The tag byte of a length-delimited field (wire type 2). */
export function lengthTag(field: number): number {
  return (field << 3) | 2;
}

/** The tag byte of a varint field (wire type 0). */
export function varintTag(field: number): number {
  return field << 3;
}

/** Bytes of `n` (a non-negative safe integer) as a varint. */
export function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 5;
  for (let rest = Math.floor(n / 0x800000000); rest > 0; rest = Math.floor(rest / 0x80)) size++;
  return size;
}

/** Writes `n` (a non-negative safe integer) as a varint at `pos`. */
export function writeVarint(buf: Buffer, pos: number, n: number): number {
  if (!(n >= 0 && Number.isSafeInteger(n)))
    throw new RangeError(`varint must be a non-negative safe integer, got ${n}`);
  // Bit operations only see 32 bits: the high part goes by division.
  while (n > 0x7fffffff) {
    buf[pos++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  while (n > 0x7f) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  buf[pos++] = n;
  return pos;
}

/** Size of a length-delimited field (one-byte tag) whose body is `length` bytes. */
export function fieldSize(length: number): number {
  return 1 + varintSize(length) + length;
}

/** Writes the tag and length of a length-delimited field; its body follows at the position returned. */
export function writeFieldHead(buf: Buffer, pos: number, tag: number, length: number): number {
  buf[pos] = tag;
  return writeVarint(buf, pos + 1, length);
}

/** Writes a string field whose UTF-8 length is `length` (measured with Buffer.byteLength). */
export function writeStringField(
  buf: Buffer,
  pos: number,
  tag: number,
  value: string,
  length: number,
): number {
  pos = writeFieldHead(buf, pos, tag, length);
  return pos + (length === 0 ? 0 : buf.write(value, pos, length, 'utf8'));
}

/** Size of a `map<string, string>` entry field (key = 1, value = 2) with these UTF-8 lengths. */
export function stringMapEntrySize(keyLength: number, valueLength: number): number {
  return fieldSize(fieldSize(keyLength) + fieldSize(valueLength));
}

/** Writes one `map<string, string>` entry as field `tag`. */
export function writeStringMapEntry(
  buf: Buffer,
  pos: number,
  tag: number,
  key: string,
  keyLength: number,
  value: string,
  valueLength: number,
): number {
  pos = writeFieldHead(buf, pos, tag, fieldSize(keyLength) + fieldSize(valueLength));
  pos = writeStringField(buf, pos, KEY, key, keyLength);
  return writeStringField(buf, pos, VALUE, value, valueLength);
}

/** A whole `map<string, string>` field `tag`, encoded once (labels that never change). */
export function encodeStringMap(tag: number, map: Record<string, string>): Buffer {
  const entries = Object.entries(map).map(
    ([k, v]) => [k, v, Buffer.byteLength(k), Buffer.byteLength(v)] as const,
  );
  let size = 0;
  for (const [, , kl, vl] of entries) size += stringMapEntrySize(kl, vl);
  const buf = Buffer.alloc(size);
  let pos = 0;
  for (const [k, v, kl, vl] of entries) pos = writeStringMapEntry(buf, pos, tag, k, kl, v, vl);
  return buf;
}

const KEY = lengthTag(1);
const VALUE = lengthTag(2);
