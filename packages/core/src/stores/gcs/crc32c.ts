import type { ChunkObject } from './layout.js';

// CRC32C is the only checksum GCS keeps on a composed object (it has no MD5), so finish() checks a
// composition by combining its chunks' CRC32C values instead of reading the object back.

/** crc32c of the chunks' concatenation, from their own crc32c values; undefined if one lacks it. */
export function combinedCrc32c(chunks: readonly ChunkObject[]): string | undefined {
  let crc = 0;
  for (const chunk of chunks) {
    const b64 = chunk.file.metadata.crc32c;
    if (typeof b64 !== 'string') return undefined;
    const part = Buffer.from(b64, 'base64');
    if (part.length !== 4) return undefined;
    crc = crc32cCombine(crc, part.readUInt32BE(0), chunk.size);
  }
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc >>> 0, 0);
  return out.toString('base64');
}

/**
 * crc32c(A ‖ B) from crc32c(A), crc32c(B) and B's length: zlib's crc32_combine over GF(2),
 * with the Castagnoli polynomial. Lets finish() check a composed object without reading it.
 */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  if (lengthB <= 0) return crcA >>> 0;
  const times = (mat: Uint32Array, vec: number): number => {
    let sum = 0;
    for (let i = 0; vec !== 0; i++, vec >>>= 1) if (vec & 1) sum ^= mat[i]!;
    return sum >>> 0;
  };
  const square = (out: Uint32Array, mat: Uint32Array) => {
    for (let n = 0; n < 32; n++) out[n] = times(mat, mat[n]!);
  };
  const even = new Uint32Array(32);
  const odd = new Uint32Array(32);
  odd[0] = 0x82f63b78;
  for (let n = 1, row = 1; n < 32; n++, row <<= 1) odd[n] = row >>> 0;
  square(even, odd); // two zero bits
  square(odd, even); // four zero bits
  let crc = crcA >>> 0;
  let len = lengthB;
  do {
    square(even, odd);
    if (len % 2 === 1) crc = times(even, crc);
    len = Math.floor(len / 2);
    if (len === 0) break;
    square(odd, even);
    if (len % 2 === 1) crc = times(odd, crc);
    len = Math.floor(len / 2);
  } while (len !== 0);
  return (crc ^ crcB) >>> 0;
}
