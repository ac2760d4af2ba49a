/**
 * JSON as Elasticsearch reads and writes it: an integer is exact whatever its size. Jackson
 * parses `1755011166339518001` as a long (a BigInteger past 2^63), where JSON.parse rounds it to
 * the nearest double (…518000), so `offset` values Airflow's shippers write (nanoseconds, ~2^60)
 * would come back changed and sort wrongly. Here integers past 2^53 become bigints, and are
 * written back as the same digits; everything else is what JSON.parse and JSON.stringify do.
 */

/** Parses JSON; integers beyond Number.MAX_SAFE_INTEGER come back as bigint. Throws SyntaxError. */
export function parseJson(text: string): unknown {
  // Only a number token of 16+ digits can be inexact; without one, the fast native parser.
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  return new Parser(text).document();
}

/** JSON.stringify that writes bigints as plain digits. */
export function stringifyJson(value: unknown): string {
  let big = false;
  const out = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'bigint') return v;
    big = true;
    return `${BIG_MARK}${v.toString()}${BIG_MARK}`;
  });
  if (!big) return out;
  return out.replace(BIG_TOKEN, (_m, digits: string) => digits);
}

/** A marker no real string contains (a random per-process token). */
const BIG_MARK = `\u{10FFFF}bigint${Math.random().toString(36).slice(2)}\u{10FFFF}`;
const BIG_TOKEN = new RegExp(`"${escapeRegExp(BIG_MARK)}(-?\\d+)${escapeRegExp(BIG_MARK)}"`, 'gu');

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

/** A recursive-descent JSON parser; strings are decoded by JSON.parse itself. */
class Parser {
  #at = 0;

  constructor(readonly text: string) {}

  document(): unknown {
    const value = this.#value();
    this.#skip();
    if (this.#at !== this.text.length) this.#fail('Unexpected data after JSON');
    return value;
  }

  #skip(): void {
    WHITESPACE.lastIndex = this.#at;
    WHITESPACE.exec(this.text);
    this.#at = WHITESPACE.lastIndex;
  }

  #fail(what: string): never {
    throw new SyntaxError(`${what} at position ${this.#at}`);
  }

  #value(): unknown {
    this.#skip();
    const ch = this.text[this.#at];
    switch (ch) {
      case '{':
        return this.#object();
      case '[':
        return this.#array();
      case '"':
        return this.#string();
      case 't':
        return this.#literal('true', true);
      case 'f':
        return this.#literal('false', false);
      case 'n':
        return this.#literal('null', null);
      default:
        return this.#number();
    }
  }

  #literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.#at)) this.#fail('Unexpected token');
    this.#at += word.length;
    return value;
  }

  #number(): number | bigint {
    NUMBER.lastIndex = this.#at;
    const m = NUMBER.exec(this.text);
    if (!m) this.#fail('Unexpected token');
    this.#at = NUMBER.lastIndex;
    const token = m[0];
    if (m[1] === undefined && m[2] === undefined) {
      const n = Number(token);
      return Number.isSafeInteger(n) ? n : BigInt(token);
    }
    return Number(token);
  }

  #string(): string {
    const start = this.#at;
    let escaped = false;
    for (let i = start + 1; i < this.text.length; i++) {
      const c = this.text.charCodeAt(i);
      if (c === 0x5c) {
        escaped = true;
        i++;
      } else if (c === 0x22) {
        this.#at = i + 1;
        const raw = this.text.slice(start, i + 1);
        return escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
      } else if (c < 0x20) {
        this.#at = i;
        this.#fail('Bad control character in string literal');
      }
    }
    return this.#fail('Unterminated string');
  }

  #array(): unknown[] {
    this.#at++;
    const out: unknown[] = [];
    this.#skip();
    if (this.text[this.#at] === ']') {
      this.#at++;
      return out;
    }
    for (;;) {
      out.push(this.#value());
      this.#skip();
      const ch = this.text[this.#at++];
      if (ch === ']') return out;
      if (ch !== ',') this.#fail("Expected ',' or ']'");
    }
  }

  #object(): Record<string, unknown> {
    this.#at++;
    const out: Record<string, unknown> = {};
    this.#skip();
    if (this.text[this.#at] === '}') {
      this.#at++;
      return out;
    }
    for (;;) {
      this.#skip();
      if (this.text[this.#at] !== '"') this.#fail('Expected a property name');
      const key = this.#string();
      this.#skip();
      if (this.text[this.#at++] !== ':') this.#fail("Expected ':'");
      const value = this.#value();
      // As JSON.parse: a later duplicate key wins; __proto__ is an ordinary key.
      Object.defineProperty(out, key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      this.#skip();
      const ch = this.text[this.#at++];
      if (ch === '}') return out;
      if (ch !== ',') this.#fail("Expected ',' or '}'");
    }
  }
}
