/**
 * The subset of the Logging query language that tasklog and Airflow's Stackdriver handler use:
 * comparisons `FIELD OP VALUE` with OP one of `= != < <= > >= :`, `AND` (also implicit: two
 * expressions side by side or on separate lines, as Airflow writes them), `OR`, `NOT` / `-`,
 * parentheses, `FIELD:*` (the field exists). Field paths like `labels.dag_id`, `labels."key.with.dots"`, `resource.type`,
 * `resource.labels.K`, `logName`, `timestamp`, `insertId`, `severity`, `textPayload`,
 * `jsonPayload.a.b`.
 *
 * Semantics, after https://cloud.google.com/logging/docs/view/logging-query-language:
 * - String comparisons are case-insensitive (the reference says the language is, except for
 *   regular expressions and the logical operators). tasklog therefore re-checks labels exactly.
 * - `timestamp` compares as a point in time (RFC 3339 values), `severity` by level.
 * - A comparison on a field the entry lacks is false (so `NOT` of it is true).
 */
import { type Comparison, compareOrdered } from '../shared/compare.js';

export type FieldValue = string | bigint | number | undefined;

/** Reads a field of an entry; `timestamp` as epoch nanoseconds, `severity` as its number. */
export type FieldReader = (path: readonly string[]) => FieldValue;

type Op = Comparison | ':';

type Node =
  | { kind: 'and' | 'or'; items: Node[] }
  | { kind: 'not'; item: Node }
  | { kind: 'cmp'; field: string[]; op: Op; value: string; bare: boolean };

export class FilterSyntaxError extends Error {}

type Token =
  | { t: 'word'; v: string }
  | { t: 'field'; v: string[] }
  | { t: 'str'; v: string }
  | { t: 'op'; v: Op }
  | { t: '(' | ')' };

const OPS: readonly Op[] = ['<=', '>=', '!=', '=', '<', '>', ':'];
const BARE = /[^\s()"=<>!:]/;

function readQuoted(src: string, start: number): [string, number] {
  let out = '';
  let i = start + 1;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '"') return [out, i + 1];
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) break;
      if (n === 'n') out += '\n';
      else if (n === 't') out += '\t';
      else if (n === 'r') out += '\r';
      else if (n === 'u' && /^[0-9a-fA-F]{4}$/.test(src.slice(i + 2, i + 6))) {
        out += String.fromCharCode(Number.parseInt(src.slice(i + 2, i + 6), 16));
        i += 4;
      } else out += n;
      i += 2;
      continue;
    }
    out += c;
    i++;
  }
  throw new FilterSyntaxError(`unterminated string starting at column ${start + 1}`);
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '(' || c === ')') {
      out.push({ t: c });
      i++;
      continue;
    }
    const op = OPS.find((o) => src.startsWith(o, i));
    if (op) {
      out.push({ t: 'op', v: op });
      i += op.length;
      continue;
    }
    if (c === '"') {
      const [v, next] = readQuoted(src, i);
      out.push({ t: 'str', v });
      i = next;
      continue;
    }
    if (!BARE.test(c)) throw new FilterSyntaxError(`unexpected "${c}" at column ${i + 1}`);
    // A bare word; in a field path like `labels."a.b"` a segment after a dot may be quoted.
    const segments: string[] = [];
    let quoted = false;
    for (;;) {
      if (src[i] === '"' && segments.length > 0) {
        const [v, next] = readQuoted(src, i);
        segments.push(v);
        quoted = true;
        i = next;
      } else {
        let w = '';
        while (i < src.length && src[i] !== '.' && BARE.test(src[i]!)) w += src[i++];
        segments.push(w);
      }
      if (src[i] !== '.') break;
      i++;
    }
    out.push(quoted ? { t: 'field', v: segments } : { t: 'word', v: segments.join('.') });
  }
  return out;
}

class Parser {
  #pos = 0;
  constructor(readonly tokens: Token[]) {}

  parse(): Node {
    if (this.tokens.length === 0) return { kind: 'and', items: [] };
    const node = this.#or();
    if (this.#pos < this.tokens.length) {
      throw new FilterSyntaxError(`unexpected token at position ${this.#pos + 1}`);
    }
    return node;
  }

  #peek(): Token | undefined {
    return this.tokens[this.#pos];
  }

  #isWord(v: string): boolean {
    const t = this.#peek();
    return t?.t === 'word' && t.v === v;
  }

  #or(): Node {
    const items = [this.#and()];
    while (this.#isWord('OR')) {
      this.#pos++;
      items.push(this.#and());
    }
    return items.length === 1 ? items[0]! : { kind: 'or', items };
  }

  #and(): Node {
    const items = [this.#unary()];
    for (;;) {
      const t = this.#peek();
      if (!t || t.t === ')' || (t.t === 'word' && t.v === 'OR')) break;
      if (t.t === 'word' && t.v === 'AND') this.#pos++;
      items.push(this.#unary());
    }
    return items.length === 1 ? items[0]! : { kind: 'and', items };
  }

  #unary(): Node {
    if (this.#isWord('NOT')) {
      this.#pos++;
      return { kind: 'not', item: this.#unary() };
    }
    const t = this.#peek();
    if (t?.t === 'word' && t.v.startsWith('-') && t.v.length > 1) {
      this.tokens[this.#pos] = { t: 'word', v: t.v.slice(1) };
      return { kind: 'not', item: this.#primary() };
    }
    return this.#primary();
  }

  #primary(): Node {
    const t = this.tokens[this.#pos++];
    if (!t) throw new FilterSyntaxError('unexpected end of filter');
    if (t.t === '(') {
      const inner = this.#or();
      if (this.tokens[this.#pos++]?.t !== ')') throw new FilterSyntaxError('missing ")"');
      return inner;
    }
    if (t.t !== 'word' && t.t !== 'field') {
      throw new FilterSyntaxError(
        'global restrictions (a value without a field) are not supported',
      );
    }
    const field = t.t === 'field' ? t.v : t.v.split('.');
    if (field.some((s) => s === ''))
      throw new FilterSyntaxError(`bad field path "${field.join('.')}"`);
    const op = this.tokens[this.#pos++];
    if (op?.t !== 'op') {
      throw new FilterSyntaxError(`expected a comparison operator after ${field.join('.')}`);
    }
    const value = this.tokens[this.#pos++];
    if (value?.t !== 'str' && value?.t !== 'word') {
      throw new FilterSyntaxError(`expected a value after ${field.join('.')} ${op.v}`);
    }
    return { kind: 'cmp', field, op: op.v, value: value.v, bare: value.t === 'word' };
  }
}

const SEVERITIES: Record<string, number> = {
  DEFAULT: 0,
  DEBUG: 100,
  INFO: 200,
  NOTICE: 300,
  WARNING: 400,
  ERROR: 500,
  CRITICAL: 600,
  ALERT: 700,
  EMERGENCY: 800,
};

/** LogSeverity as a number, from a number or a name. */
export function severityNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const n = SEVERITIES[v.toUpperCase()];
    if (n !== undefined) return n;
    if (/^\d+$/.test(v)) return Number(v);
  }
  return 0;
}

/** RFC 3339 (fraction up to nanoseconds, `Z` or an offset) → epoch nanoseconds. */
export function parseRfc3339(text: string): bigint | undefined {
  const m =
    /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(
      text,
    );
  if (!m) return undefined;
  const ms = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  if (Number.isNaN(ms)) return undefined;
  let nanos = BigInt(ms) * 1_000_000n + BigInt((m[7] ?? '').padEnd(9, '0') || '0');
  if (m[9]) {
    const offset = BigInt((+m[10]! * 60 + +m[11]!) * 60) * 1_000_000_000n;
    nanos = m[9] === '+' ? nanos - offset : nanos + offset;
  }
  return nanos;
}

function compare(op: Op, actual: FieldValue, wanted: string, field: string[]): boolean {
  if (actual === undefined) return false;
  let a: bigint | number | string;
  let b: bigint | number | string;
  if (typeof actual === 'bigint') {
    const t = parseRfc3339(wanted);
    if (t === undefined)
      throw new FilterSyntaxError(`invalid timestamp "${wanted}" for ${field.join('.')}`);
    a = actual;
    b = t;
  } else if (typeof actual === 'number') {
    a = actual;
    b = severityNumber(wanted);
  } else {
    a = actual.toLowerCase();
    b = wanted.toLowerCase();
  }
  if (op === ':') return String(a).includes(String(b));
  return compareOrdered(a, op, b);
}

function evaluate(node: Node, read: FieldReader): boolean {
  switch (node.kind) {
    case 'and':
      return node.items.every((n) => evaluate(n, read));
    case 'or':
      return node.items.some((n) => evaluate(n, read));
    case 'not':
      return !evaluate(node.item, read);
    case 'cmp':
      // `FIELD:*` (an unquoted star) tests that the field exists.
      if (node.op === ':' && node.bare && node.value === '*') return read(node.field) !== undefined;
      return compare(node.op, read(node.field), node.value, node.field);
  }
}

export interface CompiledFilter {
  readonly source: string;
  matches(read: FieldReader): boolean;
}

/** Parses a filter once; throws FilterSyntaxError. The empty filter matches everything. */
export function compileFilter(source: string): CompiledFilter {
  if (source.length > 20_000)
    throw new FilterSyntaxError('filter is longer than 20,000 characters');
  const tree = new Parser(tokenize(source)).parse();
  // Timestamps are parsed on first use; validate them now so a bad one fails the request.
  const check = (n: Node): void => {
    if (n.kind === 'cmp') {
      if (
        n.field.length === 1 &&
        n.field[0] === 'timestamp' &&
        parseRfc3339(n.value) === undefined
      ) {
        throw new FilterSyntaxError(`invalid timestamp "${n.value}"`);
      }
    } else if (n.kind === 'not') check(n.item);
    else n.items.forEach(check);
  };
  check(tree);
  return { source, matches: (read) => evaluate(tree, read) };
}
