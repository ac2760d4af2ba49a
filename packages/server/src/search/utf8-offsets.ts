/**
 * How many bytes the UTF-8 sequence at `bytes[i]` takes, and how many UTF-16 code units it
 * decodes to, the way TextDecoder and Buffer#toString read it (WHATWG: an ill-formed sequence
 * becomes one U+FFFD per maximal subpart), so a string index maps back to its exact byte.
 */
function sequenceAt(bytes: Uint8Array, i: number): [bytes: number, units: number] {
  const lead = bytes[i]!;
  if (lead < 0x80) return [1, 1];
  let need: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) need = 1;
  else if (lead >= 0xe0 && lead <= 0xef) {
    need = 2;
    if (lead === 0xe0) lo = 0xa0;
    if (lead === 0xed) hi = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    need = 3;
    if (lead === 0xf0) lo = 0x90;
    if (lead === 0xf4) hi = 0x8f;
  } else return [1, 1];
  for (let n = 1; n <= need; n++) {
    const b = bytes[i + n];
    if (b === undefined || b < lo || b > hi) return [n, 1];
    lo = 0x80;
    hi = 0xbf;
  }
  return [need + 1, need === 3 ? 2 : 1];
}

/**
 * Maps indexes into the decoded string of `bytes` to byte indexes, walking forward only: ask
 * for indexes in increasing order (a match's start, then its end, then the next match's start).
 */
export class Utf8Cursor {
  #byte = 0;
  #unit = 0;

  constructor(private readonly bytes: Uint8Array) {}

  /**
   * The byte index of string index `unit`. An index inside a character's surrogate pair maps to
   * the character's start, or its end with `roundUp`.
   */
  byteAt(unit: number, roundUp = false): number {
    while (this.#unit < unit && this.#byte < this.bytes.length) {
      const [b, u] = sequenceAt(this.bytes, this.#byte);
      if (this.#unit + u > unit && !roundUp) break;
      this.#byte += b;
      this.#unit += u;
    }
    return this.#byte;
  }
}

/** At most this many characters of a matching line are sent with each match. */
export const EXCERPT_CHARS = 500;

/** `text` cut to EXCERPT_CHARS around `[start, start + length)`, never inside a surrogate pair. */
export function excerpt(text: string, start: number, length: number): string {
  if (text.length <= EXCERPT_CHARS) return text;
  let from =
    length >= EXCERPT_CHARS
      ? start
      : Math.min(
          Math.max(0, start - Math.floor((EXCERPT_CHARS - length) / 2)),
          text.length - EXCERPT_CHARS,
        );
  let to = from + EXCERPT_CHARS;
  if (isLowSurrogate(text.charCodeAt(from))) from++;
  if (isLowSurrogate(text.charCodeAt(to))) to--;
  return text.slice(from, to);
}

const isLowSurrogate = (c: number) => c >= 0xdc00 && c <= 0xdfff;
