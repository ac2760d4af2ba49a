/**
 * The subset of the Query DSL, sorting and aggregations the emulator understands: `match_all`,
 * `term`, `terms`, `match`, `match_phrase`, `prefix`, `range`, `exists`, `ids`, `bool`; sort on
 * fields (integers compared exactly, past 2^53 too) with
 * `search_after`; `terms` and `composite` aggregations. Anything else is refused the way
 * Elasticsearch refuses an unknown query (400 `parsing_exception`), never silently ignored.
 * Reference: https://www.elastic.co/docs/reference/query-languages/querydsl
 */
import { EsApiError, esErrors } from './es-errors.js';
import { stringifyJson } from './es-json.js';
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

function shardError(type: string, reason: string): ShardError {
  return new ShardError(400, type, reason);
}

function asObject(value: unknown, what: string): Record<string, unknown> {
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

interface Resolved {
  type: FieldType;
  path: string;
}

/** Turns a query value into the indexed form of the field, as the real query parser does. */
function queryValue(field: Resolved, value: unknown): IndexedValue {
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

function comparatorFor(type: FieldType): (a: IndexedValue, b: IndexedValue) => number {
  if (isNumericType(type)) return compareNumbers;
  if (type === 'date' || type === 'boolean') return (a, b) => Number(a) - Number(b);
  // Lucene compares terms as UTF-8 bytes, which differs from JS's UTF-16 order.
  return (a, b) => Buffer.compare(Buffer.from(String(a)), Buffer.from(String(b)));
}

// --- sorting ---------------------------------------------------------------------------------

export interface SortKey {
  field: string;
  desc: boolean;
  kind: 'field' | '_doc' | '_score';
  resolved?: Resolved;
  cmp: (a: IndexedValue, b: IndexedValue) => number;
}

export function compileSort(sort: unknown, mapping: Mapping): SortKey[] {
  if (sort === undefined || sort === null) return [];
  const list = Array.isArray(sort) ? sort : [sort];
  const keys: SortKey[] = [];
  for (const item of list) {
    let field: string;
    let order: unknown;
    let unmappedType: unknown;
    if (typeof item === 'string') {
      const m = /^([^:]+)(?::(asc|desc))?$/.exec(item);
      field = m?.[1] ?? item;
      order = m?.[2];
    } else if (typeof item === 'object' && item !== null && Object.keys(item).length === 1) {
      const [name, spec] = Object.entries(item)[0]!;
      field = name;
      if (typeof spec === 'string') order = spec;
      else if (typeof spec === 'object' && spec !== null) {
        order = (spec as { order?: unknown }).order;
        unmappedType = (spec as { unmapped_type?: unknown }).unmapped_type;
      }
    } else {
      throw esErrors.parsing(
        'malformed sort format, within the sort array, an object, or an actual string are allowed',
      );
    }
    if (order !== undefined && order !== 'asc' && order !== 'desc') {
      throw esErrors.illegalArgument(`Unknown SortOrder [${String(order)}]`);
    }
    if (field === '_doc' || field === '_score') {
      keys.push({
        field,
        kind: field,
        desc: order === undefined ? field === '_score' : order === 'desc',
        cmp: (a, b) => Number(a) - Number(b),
      });
      continue;
    }
    const resolved = mapping.resolve(field);
    if (!resolved && unmappedType === undefined) {
      throw shardError(
        'query_shard_exception',
        `No mapping found for [${field}] in order to sort on`,
      );
    }
    if (resolved?.type === 'text') {
      throw shardError(
        'illegal_argument_exception',
        `Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [${field}] in order to load field data by uninverting the inverted index. Note that this can use significant memory.`,
      );
    }
    const type = resolved?.type ?? (String(unmappedType) as FieldType);
    keys.push({
      field,
      kind: 'field',
      desc: order === 'desc',
      ...(resolved ? { resolved } : {}),
      cmp: comparatorFor(type),
    });
  }
  return keys;
}

/** A document's sort values; `null` where it has no value (sorted last, as `_last` does). */
export function sortValues(doc: QueryDoc, keys: SortKey[]): (IndexedValue | null)[] {
  return keys.map((key) => {
    if (key.kind === '_doc') return doc.order;
    if (key.kind === '_score') return 1;
    const values = key.resolved ? (doc.indexed.get(key.resolved.path) ?? []) : [];
    if (values.length === 0) return null;
    // Multi-valued fields sort by their min (asc) or max (desc), ES's default mode.
    return values.reduce((best, v) =>
      (key.desc ? key.cmp(v, best) > 0 : key.cmp(v, best) < 0) ? v : best,
    );
  });
}

export function compareSortValues(
  a: (IndexedValue | null)[],
  b: (IndexedValue | null)[],
  keys: SortKey[],
): number {
  for (let i = 0; i < keys.length; i++) {
    const x = a[i] ?? null;
    const y = b[i] ?? null;
    if (x === null || y === null) {
      if (x === y) continue;
      return x === null ? 1 : -1; // missing values last, whatever the order
    }
    const c = keys[i]!.cmp(x, y);
    if (c !== 0) return keys[i]!.desc ? -c : c;
  }
  return 0;
}

/** `search_after` values in the types of the sort fields (strings are accepted for numbers). */
export function parseSearchAfter(after: unknown, keys: SortKey[]): (IndexedValue | null)[] {
  if (!Array.isArray(after)) throw esErrors.parsing('[search_after] must be an array');
  if (keys.length === 0) {
    throw esErrors.illegalArgument('Sort must contain at least one field.');
  }
  if (after.length !== keys.length) {
    throw esErrors.illegalArgument(
      `search_after has ${after.length} value(s) but sort has ${keys.length}.`,
    );
  }
  return after.map((v, i) => {
    if (v === null) return null;
    const key = keys[i]!;
    if (key.kind !== 'field' || !key.resolved) return Number(v);
    const type = key.resolved.type;
    if (isNumericType(type) || type === 'date') {
      const n = Number(v);
      if (!Number.isFinite(n)) {
        throw esErrors.illegalArgument(
          `Failed to parse search_after value for field [${key.field}].`,
        );
      }
      // Strings and bigints of integer fields stay exact.
      return isNumericType(type) ? coerce(type, v, key.field, '') : n;
    }
    return String(v);
  });
}

// --- aggregations ----------------------------------------------------------------------------

export type Aggregator = (docs: QueryDoc[]) => unknown;

export function compileAggs(aggs: unknown, mapping: Mapping): Map<string, Aggregator> {
  const out = new Map<string, Aggregator>();
  if (aggs === undefined || aggs === null) return out;
  for (const [name, def] of Object.entries(asObject(aggs, 'aggs'))) {
    const d = asObject(def, name);
    const kinds = Object.keys(d).filter((k) => k !== 'meta');
    if (kinds.some((k) => k === 'aggs' || k === 'aggregations')) {
      throw esErrors.illegalArgument(
        `sub-aggregations are not supported by the emulator [${name}]`,
      );
    }
    if (kinds.length !== 1) {
      throw esErrors.parsing(`Expected exactly one aggregation type for [${name}]`);
    }
    const kind = kinds[0]!;
    if (kind === 'terms') out.set(name, termsAgg(asObject(d.terms, 'terms'), mapping));
    else if (kind === 'composite')
      out.set(name, compositeAgg(asObject(d.composite, 'composite'), mapping));
    else throw esErrors.parsing(`Unknown aggregation type [${kind}] did you mean [terms]?`);
  }
  return out;
}

function aggField(name: unknown, mapping: Mapping): Resolved | undefined {
  if (typeof name !== 'string') throw esErrors.parsing('Required [field]');
  const field = mapping.resolve(name);
  if (field?.type === 'text') {
    throw shardError(
      'illegal_argument_exception',
      `Fielddata is disabled on [${name}] in [emulator]. Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead.`,
    );
  }
  return field;
}

function termsAgg(spec: Record<string, unknown>, mapping: Mapping): Aggregator {
  const field = aggField(spec.field, mapping);
  const size = spec.size === undefined ? 10 : Number(spec.size);
  return (docs) => {
    const counts = new Map<IndexedValue, number>();
    if (field) {
      for (const doc of docs) {
        for (const v of new Set(doc.indexed.get(field.path) ?? [])) {
          counts.set(v, (counts.get(v) ?? 0) + 1);
        }
      }
    }
    const cmp = field ? comparatorFor(field.type) : () => 0;
    const buckets = [...counts]
      .sort((a, b) => b[1] - a[1] || cmp(a[0], b[0]))
      .map(([key, doc_count]) => ({ key, doc_count }));
    const shown = buckets.slice(0, size);
    return {
      doc_count_error_upper_bound: 0,
      sum_other_doc_count: buckets.slice(size).reduce((n, b) => n + b.doc_count, 0),
      buckets: shown,
    };
  };
}

function compositeAgg(spec: Record<string, unknown>, mapping: Mapping): Aggregator {
  const size = spec.size === undefined ? 10 : Number(spec.size);
  if (!Array.isArray(spec.sources) || spec.sources.length === 0) {
    throw esErrors.illegalArgument('Composite [sources] cannot be null or empty');
  }
  const sources = spec.sources.map((s) => {
    const entries = Object.entries(asObject(s, 'sources'));
    if (entries.length !== 1) throw esErrors.parsing('Expected one source per entry');
    const [name, def] = entries[0]!;
    const d = asObject(def, name);
    if (!d.terms)
      throw esErrors.parsing(`Unknown source type [${Object.keys(d)[0]}] for [${name}]`);
    const t = asObject(d.terms, 'terms');
    const field = aggField(t.field, mapping);
    return {
      name,
      field,
      desc: t.order === 'desc',
      missingBucket: t.missing_bucket === true,
      cmp: field ? comparatorFor(field.type) : () => 0,
    };
  });
  const after =
    spec.after === undefined
      ? undefined
      : (asObject(spec.after, 'after') as Record<string, unknown>);
  const compare = (a: (IndexedValue | null)[], b: (IndexedValue | null)[]) => {
    for (let i = 0; i < sources.length; i++) {
      const x = a[i] ?? null;
      const y = b[i] ?? null;
      if (x === null || y === null) {
        if (x === y) continue;
        return x === null ? -1 : 1; // missing buckets first
      }
      const c = sources[i]!.cmp(x, y);
      if (c !== 0) return sources[i]!.desc ? -c : c;
    }
    return 0;
  };
  const afterKey = after
    ? sources.map((s) => {
        const v = after[s.name];
        if (v === null || v === undefined) return null;
        return s.field ? queryValue(s.field, v) : (v as IndexedValue);
      })
    : undefined;
  return (docs) => {
    const buckets = new Map<string, { key: (IndexedValue | null)[]; count: number }>();
    for (const doc of docs) {
      // Every combination of the document's values is one bucket key.
      let combos: (IndexedValue | null)[][] = [[]];
      for (const s of sources) {
        const values = s.field ? [...new Set(doc.indexed.get(s.field.path) ?? [])] : [];
        const choices: (IndexedValue | null)[] =
          values.length > 0 ? values : s.missingBucket ? [null] : [];
        combos = combos.flatMap((c) => choices.map((v) => [...c, v]));
      }
      for (const key of combos) {
        const id = stringifyJson(key);
        const bucket = buckets.get(id);
        if (bucket) bucket.count++;
        else buckets.set(id, { key, count: 1 });
      }
    }
    const sorted = [...buckets.values()]
      .filter((b) => !afterKey || compare(b.key, afterKey) > 0)
      .sort((a, b) => compare(a.key, b.key))
      .slice(0, size);
    const asObj = (key: (IndexedValue | null)[]) =>
      Object.fromEntries(sources.map((s, i) => [s.name, key[i] ?? null]));
    return {
      ...(sorted.length > 0 ? { after_key: asObj(sorted.at(-1)!.key) } : {}),
      buckets: sorted.map((b) => ({ key: asObj(b.key), doc_count: b.count })),
    };
  };
}
