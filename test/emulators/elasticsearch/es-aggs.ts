/**
 * The aggregations the emulator understands: `terms` and `composite` (paged with `after`), on
 * keyword, numeric and date fields; anything else, sub-aggregations included, is refused.
 * Reference: https://www.elastic.co/docs/reference/aggregations
 */
import { esErrors } from './es-errors.js';
import { stringifyJson } from './es-json.js';
import type { IndexedValue, Mapping } from './es-mapping.js';
import {
  asObject,
  comparatorFor,
  type QueryDoc,
  queryValue,
  type Resolved,
  shardError,
} from './es-query.js';

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
