/**
 * The part of CloudWatch Logs' filter pattern syntax the emulator understands
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html):
 *
 * - empty: every event;
 * - terms: `ERROR "disk full" -DEBUG`: every term must occur in the message (case-sensitive),
 *   none of the `-` terms may;
 * - JSON: `{ $.a.b = value }` with `=`, `!=`, `<`, `<=`, `>`, `>=`, combined with `&&`, `||` and
 *   parentheses. A number compares numerically; a string (quoted or bare) with `=` / `!=` matches
 *   exactly, `*` being a wildcard. A message that is not a JSON object never matches.
 *
 * Anything else (space-delimited `[...]` patterns, regular expressions, `IS NULL`) is rejected
 * with InvalidParameterException rather than silently matching something different.
 */
import { type Comparison, compareOrdered } from '../shared/compare.js';
import { errors } from './api-error.js';

export type EventPredicate = (message: string) => boolean;

export function compileFilterPattern(pattern: string | undefined): EventPredicate {
  const source = (pattern ?? '').trim();
  if (source === '') return () => true;
  if (source.startsWith('{')) return compileJsonPattern(source);
  if (source.startsWith('[') || source.startsWith('%')) {
    throw errors.invalid(`Invalid filter pattern: ${source} (not supported by the emulator)`);
  }
  return compileTerms(source);
}

function compileTerms(source: string): EventPredicate {
  const include: string[] = [];
  const exclude: string[] = [];
  const re = /(-?)(?:"((?:[^"\\]|\\.)*)"|(\S+))/g;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    const term = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
    (m[1] ? exclude : include).push(term);
  }
  return (message) =>
    include.every((t) => message.includes(t)) && !exclude.some((t) => message.includes(t));
}

type Op = Comparison;
type Expr =
  | { kind: 'and' | 'or'; left: Expr; right: Expr }
  | { kind: 'cmp'; path: (string | number)[]; op: Op; value: number | string };

function compileJsonPattern(source: string): EventPredicate {
  if (!source.endsWith('}')) throw errors.invalid(`Invalid filter pattern: ${source}`);
  const tokens = tokenize(source.slice(1, -1), source);
  let pos = 0;
  const fail = (): never => {
    throw errors.invalid(`Invalid filter pattern: ${source}`);
  };
  const peek = () => tokens[pos];
  /** A parser of `operand (op operand)*`, grouped from the left into `kind` nodes. */
  const leftChain = (op: '||' | '&&', kind: 'or' | 'and', operand: () => Expr) => (): Expr => {
    let left = operand();
    while (peek() === op) {
      pos++;
      left = { kind, left, right: operand() };
    }
    return left;
  };
  // || binds looser than &&.
  const parseOr = leftChain('||', 'or', () => parseAnd());
  const parseAnd = leftChain('&&', 'and', () => parseTerm());
  const parseTerm = (): Expr => {
    const t = tokens[pos++];
    if (t === '(') {
      const inner = parseOr();
      if (tokens[pos++] !== ')') fail();
      return inner;
    }
    if (typeof t !== 'string' || !t.startsWith('$')) return fail();
    const path = parseSelector(t) ?? fail();
    const op = tokens[pos++];
    if (!isOp(op)) return fail();
    const raw = tokens[pos++];
    if (raw === undefined || isOp(raw) || ['&&', '||', '(', ')'].includes(raw)) return fail();
    let value: number | string;
    if (raw.startsWith('"')) value = raw.slice(1, -1).replace(/\\(.)/g, '$1');
    else if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(raw)) value = Number(raw);
    else value = raw;
    if (typeof value === 'string' && op !== '=' && op !== '!=') fail();
    return { kind: 'cmp', path, op, value };
  };
  const expr = parseOr();
  if (pos !== tokens.length) fail();
  return (message) => {
    let doc: unknown;
    try {
      doc = JSON.parse(message);
    } catch {
      return false;
    }
    if (typeof doc !== 'object' || doc === null) return false;
    return evaluate(expr, doc);
  };
}

function tokenize(body: string, source: string): string[] {
  const out: string[] = [];
  const re = /\s*("(?:[^"\\]|\\.)*"|&&|\|\||!=|<=|>=|=|<|>|\(|\)|[^\s()=!<>&|"]+)/gy;
  let last = 0;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    out.push(m[1]!);
    last = re.lastIndex;
  }
  if (body.slice(last).trim() !== '') throw errors.invalid(`Invalid filter pattern: ${source}`);
  return out;
}

function isOp(t: string | undefined): t is Op {
  return t === '=' || t === '!=' || t === '<' || t === '<=' || t === '>' || t === '>=';
}

function parseSelector(token: string): (string | number)[] | undefined {
  const path: (string | number)[] = [];
  const re = /\.([A-Za-z_@$][\w@$-]*)|\[(\d+)\]/y;
  re.lastIndex = 1;
  while (re.lastIndex < token.length) {
    const m = re.exec(token);
    if (!m) return undefined;
    path.push(m[1] !== undefined ? m[1] : Number(m[2]));
  }
  return path.length ? path : undefined;
}

function evaluate(expr: Expr, doc: object): boolean {
  switch (expr.kind) {
    case 'and':
      return evaluate(expr.left, doc) && evaluate(expr.right, doc);
    case 'or':
      return evaluate(expr.left, doc) || evaluate(expr.right, doc);
    case 'cmp': {
      let v: unknown = doc;
      for (const step of expr.path) {
        if (typeof v !== 'object' || v === null) return false;
        v = (v as Record<string | number, unknown>)[step];
      }
      return compare(v, expr.op, expr.value);
    }
  }
}

function compare(actual: unknown, op: Op, expected: number | string): boolean {
  if (typeof expected === 'number') {
    return typeof actual === 'number' && compareOrdered(actual, op, expected);
  }
  if (actual === undefined || actual === null || typeof actual === 'object') return false;
  const text = String(actual);
  const pattern = new RegExp(
    `^${expected
      .split('*')
      .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
    's',
  );
  const hit = pattern.test(text);
  return op === '=' ? hit : !hit;
}
