/**
 * The subset of the Query DSL the emulator understands: `match_all`, `term`, `terms`, `match`,
 * `match_phrase`, `prefix`, `range`, `exists`, `ids`, `bool` (sorting is in es-sort.ts,
 * aggregations in es-aggs.ts). Anything else is refused the way Elasticsearch refuses an unknown
 * query (400 `parsing_exception`), never silently ignored.
 * Reference: https://www.elastic.co/docs/reference/query-languages/querydsl
 */
import { EsApiError, esErrors } from './es-errors.js';
import {
  coerce,
  compareNumbers,
  type FieldType,
  type IndexedValue,
  isNumericType,
  type Mapping,
  parseDate,
  tokens,
} from './es-mapping.js';

/** What the query layer needs of a stored document. */
export interface QueryDoc {
  readonly id: string;
  readonly indexed: Map<string, IndexedValue[]>;
  /** Insertion order, for `_doc` sorting and stable results. */
  readonly order: number;
}

export type Predicate = (doc: QueryDoc) => boolean;

/** An error found while a shard runs the query: ES reports it wrapped in a search phase failure. */
export class ShardError extends EsApiError {}

export function shardError(type: string, reason: string): ShardError {
  return new ShardError(400, type, reason);
}

export function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw esErrors.parsing(`[${what}] query malformed, no start_object after query name`);
  }
  return value as Record<string, unknown>;
}

/** The single `{ field: spec }` entry of a leaf query. */
function fieldEntry(body: unknown, kind: string): [string, unknown] {
  const obj = asObject(body, kind);
  const entries = Object.entries(obj).filter(([k]) => k !== 'boost' && k !== '_name');
  if (entries.length !== 1) {
    throw esErrors.parsing(
      `[${kind}] query doesn't support multiple fields, found [${entries.map(([k]) => k).join('] and [')}]`,
    );
  }
  return entries[0]!;
}

/** A field of the mapping a query names, with its type. */
export interface Resolved {
  type: FieldType;
  path: string;
}

/** Turns a query value into the indexed form of the field, as the real query parser does. */
export function queryValue(field: Resolved, value: unknown): IndexedValue {
  if (field.type === 'text') return String(value);
  try {
    return coerce(field.type, value, field.path, '');
  } catch {
    throw shardError(
      'query_shard_exception',
      `failed to create query: For input string: "${String(value)}"`,
    );
  }
}

export function compileQuery(query: unknown, mapping: Mapping): Predicate {
  if (query === undefined || query === null) return () => true;
  const q = asObject(query, 'query');
  const kinds = Object.keys(q);
  if (kinds.length !== 1) {
    throw esErrors.parsing(
      kinds.length === 0
        ? 'query malformed, empty clause found'
        : `[${kinds[0]}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]`,
    );
  }
  const kind = kinds[0]!;
  const body = q[kind];
  switch (kind) {
    case 'match_all':
      return () => true;
    case 'match_none':
      return () => false;
    case 'bool':
      return compileBool(asObject(body, 'bool'), mapping);
    case 'ids': {
      const values = asObject(body, 'ids').values;
      if (!Array.isArray(values)) throw esErrors.parsing('[ids] requires [values]');
      const set = new Set(values.map(String));
      return (doc) => set.has(doc.id);
    }
    case 'exists': {
      const field = asObject(body, 'exists').field;
      if (typeof field !== 'string')
        throw esErrors.parsing('[exists] must be provided with a [field]');
      return (doc) => (doc.indexed.get(field)?.length ?? 0) > 0;
    }
    case 'term': {
      const [name, spec] = fieldEntry(body, 'term');
      const value =
        typeof spec === 'object' && spec !== null ? (spec as { value?: unknown }).value : spec;
      if (value === undefined || value === null) {
        throw esErrors.parsing('[term] query requires a [value]');
      }
      return termPredicate(mapping, name, [value]);
    }
    case 'terms': {
      const entries = Object.entries(asObject(body, 'terms')).filter(([k]) => k !== 'boost');
      if (entries.length !== 1 || !Array.isArray(entries[0]![1])) {
        throw esErrors.parsing('[terms] query requires a field with an array of values');
      }
      return termPredicate(mapping, entries[0]![0], entries[0]![1] as unknown[]);
    }
    case 'match':
    case 'match_phrase': {
      const [name, spec] = fieldEntry(body, kind);
      const text =
        typeof spec === 'object' && spec !== null ? (spec as { query?: unknown }).query : spec;
      if (text === undefined || text === null) {
        throw esErrors.parsing(`[${kind}] requires query value`);
      }
      return matchPredicate(mapping, name, text, kind === 'match_phrase');
    }
    case 'range': {
      const [name, spec] = fieldEntry(body, 'range');
      return rangePredicate(mapping, name, asObject(spec, 'range'));
    }
    case 'prefix': {
      const [name, spec] = fieldEntry(body, 'prefix');
      const value =
        typeof spec === 'object' && spec !== null ? (spec as { value?: unknown }).value : spec;
      if (typeof value !== 'string') throw esErrors.parsing('[prefix] query requires a [value]');
      return prefixPredicate(mapping, name, value);
    }
    default:
      throw esErrors.parsing(`unknown query [${kind}]`);
  }
}

function compileBool(body: Record<string, unknown>, mapping: Mapping): Predicate {
  const clauses = (name: string): Predicate[] => {
    const v = body[name];
    if (v === undefined) return [];
    return (Array.isArray(v) ? v : [v]).map((c) => compileQuery(c, mapping));
  };
  for (const key of Object.keys(body)) {
    if (
      !['must', 'filter', 'should', 'must_not', 'minimum_should_match', 'boost', '_name'].includes(
        key,
      )
    ) {
      throw esErrors.parsing(`[bool] query does not support [${key}]`);
    }
  }
  const must = [...clauses('must'), ...clauses('filter')];
  const should = clauses('should');
  const mustNot = clauses('must_not');
  // Without must/filter clauses at least one should clause has to match; with them, none.
  const msm =
    body.minimum_should_match !== undefined
      ? Number(body.minimum_should_match)
      : must.length === 0 && should.length > 0
        ? 1
        : 0;
  return (doc) =>
    must.every((p) => p(doc)) &&
    !mustNot.some((p) => p(doc)) &&
    (msm === 0 || should.filter((p) => p(doc)).length >= msm);
}

function termPredicate(mapping: Mapping, name: string, values: unknown[]): Predicate {
  const field = mapping.resolve(name);
  if (!field) return () => false; // an unmapped field matches nothing
  const wanted = values.map((v) => queryValue(field, v));
  if (field.type === 'text') {
    // term is not analyzed: it matches a text field only where one indexed token equals it.
    const set = new Set(wanted.map(String));
    return (doc) =>
      (doc.indexed.get(field.path) ?? []).some((v) => tokens(String(v)).some((t) => set.has(t)));
  }
  const set = new Set(wanted);
  return (doc) => (doc.indexed.get(field.path) ?? []).some((v) => set.has(v));
}

function matchPredicate(mapping: Mapping, name: string, text: unknown, phrase: boolean): Predicate {
  const field = mapping.resolve(name);
  if (!field) return () => false;
  if (field.type !== 'text') {
    // keyword, numbers, dates: the whole value must be equal.
    const value = queryValue(field, text);
    return (doc) => (doc.indexed.get(field.path) ?? []).includes(value);
  }
  const wanted = tokens(String(text));
  if (wanted.length === 0) return () => false;
  return (doc) =>
    (doc.indexed.get(field.path) ?? []).some((v) => {
      const have = tokens(String(v));
      if (!phrase) return wanted.some((t) => have.includes(t));
      for (let i = 0; i + wanted.length <= have.length; i++) {
        if (wanted.every((t, j) => have[i + j] === t)) return true;
      }
      return false;
    });
}

function prefixPredicate(mapping: Mapping, name: string, prefix: string): Predicate {
  const field = mapping.resolve(name);
  if (!field) return () => false;
  if (field.type !== 'keyword' && field.type !== 'text') {
    throw shardError(
      'query_shard_exception',
      `Can only use prefix queries on keyword and text fields - not on [${name}] which is of type [${field.type}]`,
    );
  }
  // On text: a token starting with the (lower-cased, not analyzed) prefix.
  const want = field.type === 'text' ? prefix.toLowerCase() : prefix;
  return (doc) =>
    (doc.indexed.get(field.path) ?? []).some((v) =>
      field.type === 'text'
        ? tokens(String(v)).some((t) => t.startsWith(want))
        : String(v).startsWith(want),
    );
}

function rangePredicate(mapping: Mapping, name: string, spec: Record<string, unknown>): Predicate {
  const field = mapping.resolve(name);
  if (!field) return () => false;
  const bound = (key: string): IndexedValue | undefined => {
    const v = spec[key];
    if (v === undefined || v === null) return undefined;
    if (field.type === 'date' && typeof v === 'string') {
      const ms = v === 'now' ? Date.now() : parseDate(v);
      if (Number.isNaN(ms)) {
        throw shardError('parse_exception', `failed to parse date field [${v}]`);
      }
      return ms;
    }
    return queryValue(field, v);
  };
  for (const key of Object.keys(spec)) {
    if (!['gt', 'gte', 'lt', 'lte', 'format', 'boost', 'relation', 'time_zone'].includes(key)) {
      throw esErrors.parsing(`[range] query does not support [${key}]`);
    }
  }
  const gt = bound('gt');
  const gte = bound('gte');
  const lt = bound('lt');
  const lte = bound('lte');
  const cmp = comparatorFor(field.type);
  return (doc) =>
    (doc.indexed.get(field.path) ?? []).some(
      (v) =>
        (gt === undefined || cmp(v, gt) > 0) &&
        (gte === undefined || cmp(v, gte) >= 0) &&
        (lt === undefined || cmp(v, lt) < 0) &&
        (lte === undefined || cmp(v, lte) <= 0),
    );
}

export function comparatorFor(type: FieldType): (a: IndexedValue, b: IndexedValue) => number {
  if (isNumericType(type)) return compareNumbers;
  if (type === 'date' || type === 'boolean') return (a, b) => Number(a) - Number(b);
  // Lucene compares terms as UTF-8 bytes, which differs from JS's UTF-16 order.
  return (a, b) => Buffer.compare(Buffer.from(String(a)), Buffer.from(String(b)));
}
