/** An inclusive byte range, as in `Content-Range: bytes start-end/size`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Reads a `Range` header for a representation of `size` bytes (RFC 9110 §14.1.2).
 *
 * Returns the range, `'unsatisfiable'` (answer 416 with `Content-Range: bytes *\/size`), or
 * undefined when the header is to be ignored and the whole log sent: a syntax we do not know,
 * or several ranges — multipart/byteranges buys a log viewer nothing, and the RFC lets a server
 * ignore Range.
 */
export function parseByteRange(
  header: string,
  size: number,
): ByteRange | 'unsatisfiable' | undefined {
  const m = /^\s*bytes\s*=(.*)$/i.exec(header);
  if (!m) return undefined;
  const specs = m[1]!.split(',').filter((s) => s.trim() !== '');
  if (specs.length !== 1) return undefined;
  const spec = /^\s*(\d*)\s*-\s*(\d*)\s*$/.exec(specs[0]!);
  if (!spec) return undefined;
  const [, first, last] = spec;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? Number.POSITIVE_INFINITY : Number(last);
  if (end < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end: Math.min(end, size - 1) };
}
