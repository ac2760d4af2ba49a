/**
 * `_search`, `_count` and `_delete_by_query` over the refreshed snapshot of each target index:
 * the Query DSL subset, sort and `search_after`, `from`/`size` within `index.max_result_window`,
 * `_source` filtering and aggregations (see es-query.ts, es-sort.ts and es-aggs.ts).
 */

import { partitionPoint } from '../shared/binary-search.js';
import { drain } from '../shared/http-exchange.js';
import { compileAggs } from './es-aggs.js';
import { type EsCluster, wildcardRegExp } from './es-cluster.js';
import { EsApiError, esErrors } from './es-errors.js';
import { type Ctx, readEsJson, send } from './es-http.js';
import type { EsIndex, StoredDoc } from './es-index.js';
import { stringifyJson } from './es-json.js';
import { compileQuery, ShardError } from './es-query.js';
import {
  compareSortValues,
  compileSort,
  parseSearchAfter,
  type SortKey,
  sortValues,
} from './es-sort.js';

interface Hit {
  index: EsIndex;
  doc: StoredDoc;
  sort?: (string | number | bigint | boolean | null)[];
}

export type Matching = {
  /** Sorted by the sort keys when there are some, else in index order. */
  hits: Hit[];
  failures: { index: string; reason: unknown }[];
  keys: SortKey[];
};

const RESULT_CACHE_SIZE = 8;

/**
 * The query's hits, from the cluster's cache of the last few results, keyed by query, sort and
 * the targets' refresh generations: paging with search_after through one snapshot then costs a
 * binary search per page instead of running and sorting the whole query again (Lucene's index
 * structures do the same job).
 */
function matching(
  cluster: EsCluster,
  targets: EsIndex[],
  query: unknown,
  withSort: unknown,
): Matching {
  const cacheKey = stringifyJson([
    targets.map((t) => [t.name, t.uuid, t.generation]),
    query ?? null,
    withSort ?? null,
  ]);
  const cached = cluster.resultCache.get(cacheKey);
  if (cached) {
    cluster.resultCache.delete(cacheKey);
    cluster.resultCache.set(cacheKey, cached);
    return cached;
  }
  const result = runQuery(targets, query, withSort);
  cluster.resultCache.set(cacheKey, result);
  if (cluster.resultCache.size > RESULT_CACHE_SIZE) {
    cluster.resultCache.delete(cluster.resultCache.keys().next().value as string);
  }
  return result;
}

/** Runs the query on every target index; a shard-level failure in some indices is reported. */
function runQuery(targets: EsIndex[], query: unknown, withSort: unknown): Matching {
  const hits: Hit[] = [];
  const failures: { index: string; reason: unknown }[] = [];
  let keys: SortKey[] | undefined;
  let firstError: ShardError | undefined;
  for (const index of targets) {
    let predicate: ReturnType<typeof compileQuery>;
    let indexKeys: SortKey[];
    try {
      predicate = compileQuery(query, index.mapping);
      indexKeys = compileSort(withSort, index.mapping);
    } catch (err) {
      if (!(err instanceof ShardError)) throw err;
      firstError ??= err;
      failures.push({ index: index.name, reason: err.body() });
      continue;
    }
    keys ??= indexKeys;
    for (const doc of index.searchable()) {
      if (!predicate(doc)) continue;
      hits.push({
        index,
        doc,
        ...(indexKeys.length ? { sort: sortValues(doc, indexKeys) } : {}),
      });
    }
  }
  if (firstError && failures.length === targets.length) throw firstError;
  const sortKeys = keys ?? [];
  if (sortKeys.length > 0) {
    hits.sort(
      (a, b) =>
        compareSortValues(a.sort!, b.sort!, sortKeys) ||
        a.index.name.localeCompare(b.index.name) ||
        a.doc.order - b.doc.order,
    );
  }
  return { hits, failures, keys: sortKeys };
}

function searchParams(body: Record<string, unknown>, query: URLSearchParams) {
  const num = (name: string, fallback: number) => {
    const v = body[name] ?? query.get(name) ?? undefined;
    if (v === undefined || v === null) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n)) throw esErrors.illegalArgument(`[${name}] must be an integer`);
    return n;
  };
  const qsSort = query.get('sort');
  return {
    size: num('size', 10),
    from: num('from', 0),
    sort: body.sort ?? (qsSort ? qsSort.split(',') : undefined),
  };
}

const SEARCH_KEYS = new Set([
  'query',
  'size',
  'from',
  'sort',
  'search_after',
  '_source',
  'aggs',
  'aggregations',
  'track_total_hits',
  'timeout',
  'version',
  'seq_no_primary_term',
]);

export async function search(ctx: Ctx, cluster: EsCluster, expr: string): Promise<void> {
  const body = await readEsJson(ctx);
  for (const key of Object.keys(body)) {
    if (!SEARCH_KEYS.has(key))
      throw esErrors.parsing(`Unknown key for a START_OBJECT in [${key}].`);
  }
  const targets = cluster.resolve(expr, {
    ignoreUnavailable: ctx.query.get('ignore_unavailable') === 'true',
  });
  const { size, from, sort } = searchParams(body, ctx.query);
  if (size < 0)
    throw esErrors.illegalArgument(`[size] parameter cannot be negative, found [${size}]`);
  if (from < 0)
    throw esErrors.illegalArgument(`[from] parameter cannot be negative, found [${from}]`);
  const window = Math.min(...targets.map((t) => t.maxResultWindow), 10_000);
  if (from + size > window) {
    throw new ShardError(
      400,
      'illegal_argument_exception',
      `Result window is too large, from + size must be less than or equal to: [${window}] but was [${from + size}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.`,
    );
  }
  if (body.search_after !== undefined && from > 0) {
    throw esErrors.illegalArgument(
      '`from` parameter must be set to 0 when `search_after` is used.',
    );
  }
  const { hits, failures, keys: sortKeys } = matching(cluster, targets, body.query, sort);
  const aggs = new Map<string, ReturnType<typeof compileAggs>>();
  for (const index of targets) {
    aggs.set(index.name, compileAggs(body.aggs ?? body.aggregations, index.mapping));
  }
  let page = hits;
  if (body.search_after !== undefined) {
    const after = parseSearchAfter(body.search_after, sortKeys);
    // hits are sorted: binary search for the first one after `after`.
    const lo = partitionPoint(hits, (hit) => compareSortValues(hit.sort!, after, sortKeys) <= 0);
    page = hits.slice(lo, lo + from + size);
  }
  page = page.slice(from, from + size);
  const total = hits.length;
  const pickSource = sourceFilter(body._source);
  const tth = body.track_total_hits;
  const totalOut =
    tth === false
      ? undefined
      : tth === true || total <= 10_000
        ? { value: total, relation: 'eq' }
        : { value: 10_000, relation: 'gte' };
  const aggregations: Record<string, unknown> = {};
  const firstAggs = aggs.get(targets[0]?.name ?? '') ?? new Map();
  for (const [name, aggregator] of firstAggs) {
    aggregations[name] = aggregator(hits.map((h) => h.doc));
  }
  await drain(ctx.req);
  send(ctx, 200, {
    took: 1,
    timed_out: false,
    _shards: {
      total: targets.length,
      successful: targets.length - failures.length,
      skipped: 0,
      failed: failures.length,
      ...(failures.length ? { failures: failures.map((f) => ({ shard: 0, ...f })) } : {}),
    },
    hits: {
      ...(totalOut ? { total: totalOut } : {}),
      max_score: sortKeys.length ? null : page.length ? 1 : null,
      hits: page.map((h) => ({
        _index: h.index.name,
        _id: h.doc.id,
        _score: sortKeys.length ? null : 1,
        ...(body.version === true ? { _version: h.doc.version } : {}),
        ...pickSource(h.doc.source),
        ...(h.sort ? { sort: h.sort } : {}),
      })),
    },
    ...(firstAggs.size ? { aggregations } : {}),
  });
}

export async function count(ctx: Ctx, cluster: EsCluster, expr: string): Promise<void> {
  const body = await readEsJson(ctx);
  const targets = cluster.resolve(expr, {
    ignoreUnavailable: ctx.query.get('ignore_unavailable') === 'true',
  });
  const { hits, failures } = matching(cluster, targets, body.query, undefined);
  send(ctx, 200, {
    count: hits.length,
    _shards: {
      total: targets.length,
      successful: targets.length - failures.length,
      skipped: 0,
      failed: failures.length,
    },
  });
}

export async function deleteByQuery(ctx: Ctx, cluster: EsCluster, expr: string): Promise<void> {
  const body = await readEsJson(ctx);
  if (body.query === undefined) {
    throw new EsApiError(
      400,
      'action_request_validation_exception',
      'Validation Failed: 1: query is missing;',
    );
  }
  const targets = cluster.resolve(expr);
  const proceed = ctx.query.get('conflicts') === 'proceed';
  const { hits } = matching(cluster, targets, body.query, undefined);
  let deleted = 0;
  let conflicts = 0;
  const failures: unknown[] = [];
  // Like the real API it deletes what a search saw; a document changed since then conflicts.
  for (const hit of hits) {
    const live = hit.index.liveVersion(hit.doc.id);
    if (live === undefined) continue;
    if (live !== hit.doc.version) {
      conflicts++;
      if (!proceed) {
        failures.push({
          index: hit.index.name,
          id: hit.doc.id,
          cause: esErrors.versionConflict(hit.index.name, hit.doc.id, live).body(),
          status: 409,
        });
        break;
      }
      continue;
    }
    hit.index.delete(hit.doc.id);
    deleted++;
  }
  const refresh = ctx.query.get('refresh');
  if (refresh === '' || refresh === 'true') for (const index of targets) index.refresh();
  send(ctx, failures.length ? 409 : 200, {
    took: 1,
    timed_out: false,
    total: hits.length,
    deleted,
    batches: 1,
    version_conflicts: conflicts,
    noops: 0,
    retries: { bulk: 0, search: 0 },
    throttled_millis: 0,
    requests_per_second: -1,
    throttled_until_millis: 0,
    failures,
  });
}

/** `_source`: true/false, a field list, a pattern, or `{ includes, excludes }`. */
function sourceFilter(spec: unknown): (source: Record<string, unknown>) => { _source?: unknown } {
  if (spec === undefined || spec === true) return (source) => ({ _source: source });
  if (spec === false) return () => ({});
  let includes: string[] = [];
  let excludes: string[] = [];
  if (typeof spec === 'string') includes = [spec];
  else if (Array.isArray(spec)) includes = spec.map(String);
  else if (typeof spec === 'object' && spec !== null) {
    const s = spec as { includes?: unknown; excludes?: unknown };
    includes = ([] as unknown[]).concat(s.includes ?? []).map(String);
    excludes = ([] as unknown[]).concat(s.excludes ?? []).map(String);
  }
  const inc = includes.map(wildcardRegExp);
  const exc = excludes.map(wildcardRegExp);
  return (source) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(source)) {
      if (inc.length && !inc.some((re) => re.test(k))) continue;
      if (exc.length && exc.some((re) => re.test(k))) continue;
      out[k] = v;
    }
    return { _source: out };
  };
}
