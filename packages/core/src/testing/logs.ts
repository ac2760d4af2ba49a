/**
 * A small deterministic PRNG (mulberry32): numbers in [0, 1), the same for a seed on every run
 * and every machine, so a failing test can be replayed from its seed.
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the generated text is made of: the characters and line ends stores get wrong. */
const PIECES = ['INFO', 'é', '€', '𝄞', 'data', 'ok', '\r\n', '\n', 'x'.repeat(300)];

/**
 * Exactly `bytes` bytes of seeded log text: 2-, 3- and 4-byte characters, LF and CRLF line ends,
 * 300-byte runs without a line end. It is cut at `bytes`, so it may end inside a character, as
 * a log read at an arbitrary offset does.
 */
export function randomLogBytes(bytes: number, seed: number): Buffer {
  const rand = prng(seed);
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const piece = PIECES[Math.floor(rand() * PIECES.length)]!;
    parts.push(piece);
    size += Buffer.byteLength(piece) + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, bytes);
}

/**
 * `bytes` cut into consecutive pieces at `cuts`, which may be any non-negative integers (as
 * fast-check draws them): each is taken modulo `bytes.length + 1`, and a place cut twice is cut
 * once. A cut at 0 or at the end gives an empty first or last piece.
 */
export function splitAt<T extends Uint8Array>(bytes: T, cuts: readonly number[]): T[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const bounds = [0, ...points, bytes.length];
  return bounds.slice(1).map((end, i) => bytes.subarray(bounds[i], end) as T);
}
