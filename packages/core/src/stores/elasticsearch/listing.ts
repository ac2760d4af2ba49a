import type { estypes } from '@elastic/elasticsearch';
import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import { InvalidInputError } from '../../errors.js';
import type { AttemptFilter } from '../../path-template.js';
import { matchesFilter } from '../shared/chunk-layout.js';
import { throwIfAborted } from '../shared/store-checks.js';
import type { Context } from './client.js';
import { isIndexMissing } from './errors.js';
import { type Fields, ID_FIELDS, type IdField } from './fields.js';
import type { ResolvedElasticsearchOptions } from './options.js';

/** Buckets per composite aggregation page. */
const COMPOSITE_PAGE = 1000;

type ListingOptions = Pick<ResolvedElasticsearchOptions, 'index' | 'logIdTemplate'>;

/**
 * Every attempt with documents matching `wanted` (a validated filter): tasklog's by a composite
 * aggregation over dag_id, run_id, task_id, map_index, try_number; those Airflow's shippers
 * wrote (no run_id, no map_index) by their `log_id` (a `prefix` query from what the filter
 * pins, parsed back with the template; an id that splits more than one way, e.g. `-` inside
 * ids of a `-` template, needs dag_id and task_id in the filter). An index deleted meanwhile
 * lists nothing. Throws InvalidInputError when the index maps the id fields as text only.
 */
export async function* listAttempts(
  ctx: Context,
  o: ListingOptions,
  fields: Fields,
  wanted: AttemptFilter,
  signal: AbortSignal | undefined,
): AsyncGenerator<AttemptKey> {
  try {
    const paths = {} as Record<IdField, string>;
    for (const f of ID_FIELDS) {
      const path = fields.exact[f];
      if (!path) {
        throw new InvalidInputError(
          `index ${o.index} maps ${f} as analyzed text only, so attempts cannot be listed; map it as keyword`,
        );
      }
      paths[f] = path;
    }
    const values: Record<IdField, unknown> = {
      dag_id: wanted.dagId,
      run_id: wanted.runId,
      task_id: wanted.taskId,
      map_index: wanted.mapIndex,
      try_number: wanted.tryNumber,
    };
    const filters: estypes.QueryDslQueryContainer[] = ID_FIELDS.filter(
      (f) => values[f] !== undefined,
    ).map((f) => ({ term: { [paths[f]]: values[f] as string | number } }));
    const sources = ID_FIELDS.map((f) => ({ [f]: { terms: { field: paths[f] } } }));
    const listed = new Set<string>();
    const own = buckets(ctx, o.index, { bool: { filter: filters } }, sources, signal);
    for await (const bucket of own) {
      const k = keyOf(bucket);
      if (!k || !matchesFilter(k, wanted)) continue;
      listed.add(o.logIdTemplate.render(k));
      yield k;
    }
    // Attempts only Airflow's shippers indexed carry no run_id or map_index: their log_id,
    // parsed with the template, names them (where it splits only one way).
    const logIdPath = fields.logIdPath;
    if (!logIdPath) return;
    const prefix = o.logIdTemplate.prefix(wanted);
    const query: estypes.QueryDslQueryContainer = {
      bool: {
        filter: [
          prefix ? { prefix: { [logIdPath]: prefix } } : { exists: { field: logIdPath } },
          { exists: { field: 'offset' } },
        ],
        must_not: [{ exists: { field: 'length' } }],
      },
    };
    const byLogId = [{ log_id: { terms: { field: logIdPath } } }];
    for await (const bucket of buckets(ctx, o.index, query, byLogId, signal)) {
      const logId = String(bucket.log_id);
      const k = o.logIdTemplate.parse(logId, wanted);
      if (!k || listed.has(logId)) continue;
      listed.add(logId);
      yield k;
    }
  } catch (err) {
    if (!isIndexMissing(err)) throw err;
  }
}

/** Every bucket key of a composite aggregation over `sources`, paged with `after`. */
async function* buckets(
  ctx: Context,
  index: string,
  query: estypes.QueryDslQueryContainer,
  sources: Record<string, estypes.AggregationsCompositeAggregationSource>[],
  signal: AbortSignal | undefined,
): AsyncGenerator<Record<string, unknown>> {
  let after: estypes.AggregationsCompositeAggregateKey | undefined;
  for (;;) {
    throwIfAborted(signal);
    const res = await ctx.call(
      () =>
        ctx.client.search(
          {
            index,
            size: 0,
            track_total_hits: false,
            query,
            aggs: {
              attempts: {
                composite: { size: COMPOSITE_PAGE, sources, ...(after ? { after } : {}) },
              },
            },
          },
          { signal },
        ),
      signal,
    );
    const agg = res.aggregations?.attempts as
      | {
          buckets?: { key: Record<string, unknown> }[];
          after_key?: estypes.AggregationsCompositeAggregateKey;
        }
      | undefined;
    const page = agg?.buckets ?? [];
    for (const bucket of page) yield bucket.key;
    if (page.length < COMPOSITE_PAGE || !agg?.after_key) return;
    after = agg.after_key;
  }
}

/** The attempt a bucket of the five id fields names, if they make a valid one. */
function keyOf(bucket: Record<string, unknown>): AttemptKey | undefined {
  try {
    return attemptKey({
      dagId: bucket.dag_id,
      runId: bucket.run_id,
      taskId: bucket.task_id,
      mapIndex: Number(bucket.map_index),
      tryNumber: Number(bucket.try_number),
    });
  } catch {
    return undefined;
  }
}
