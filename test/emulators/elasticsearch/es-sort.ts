/**
 * Sorting as the emulator does it: on fields (integers compared exactly, past 2^53 too), `_doc`
 * and `_score`, missing values last, and `search_after` values in the types of the sort fields.
 * Reference: https://www.elastic.co/docs/reference/elasticsearch/rest-apis/sort-search-results
 */
import { esErrors } from './es-errors.js';
import {
  coerce,
  type FieldType,
  type IndexedValue,
  isNumericType,
  type Mapping,
} from './es-mapping.js';
import { comparatorFor, type QueryDoc, type Resolved, shardError } from './es-query.js';

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
