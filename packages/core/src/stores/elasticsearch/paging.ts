import type { estypes } from '@elastic/elasticsearch';
import { IntegrityError } from '../../errors.js';

/** A search hit as the store reads it; `sort` holds the exact `offset` (a string past 15 digits). */
export interface Hit {
  _id: string;
  _source?: Record<string, unknown>;
  sort?: estypes.SortResults;
}

/** One `_search` sorted by `offset` ascending, with the store's index, fields, retries, signal. */
export type SearchByOffset = (request: {
  filter: estypes.QueryDslQueryContainer[];
  size: number;
  searchAfter?: estypes.SortResults;
}) => Promise<Hit[]>;

/** ES's `index.max_result_window`: one page can never be larger. */
export const MAX_PAGE_SIZE = 10_000;

/**
 * tasklog's own documents of one log from `offset` field value `from` on, in `offset` order
 * (unique per log: `_id` is derived from it, so `search_after` on `offset` alone skips none).
 *
 * The log is read in windows of `windowBytes`: each query asks only for documents starting
 * within the window, and since `offset` counts log bytes a page then holds at most
 * `windowBytes` plus one line, however long the lines are (1,000 lines of 16 MiB would
 * otherwise be one 16 GiB answer). Pages within a window repeat one query with `search_after`;
 * when a window is exhausted, one query of size 1 finds where the next document starts.
 */
export async function* ownDocuments(
  search: SearchByOffset,
  options: { logIdQuery: estypes.QueryDslQueryContainer; from: number; pageSize: number },
  windowBytes: number,
): AsyncGenerator<Hit> {
  const { logIdQuery, pageSize } = options;
  let start = options.from;
  for (;;) {
    // Offsets too large for a byte count are not tasklog's; the caller stops at them.
    const upper = Number.isSafeInteger(start) ? start + windowBytes : undefined;
    const filter = [
      logIdQuery,
      { range: { offset: { gte: start, ...(upper !== undefined ? { lt: upper } : {}) } } },
    ];
    let after: estypes.SortResults | undefined;
    for (;;) {
      const hits = await search({
        filter,
        size: pageSize,
        ...(after ? { searchAfter: after } : {}),
      });
      yield* hits;
      if (hits.length < pageSize) break;
      after = hits.at(-1)!.sort;
      if (!after) return;
    }
    if (upper === undefined) return;
    const next = await search({
      filter: [logIdQuery, { range: { offset: { gte: upper } } }],
      size: 1,
    });
    const first = next[0]?.sort?.[0];
    if (first === undefined || first === null) return;
    start = Number(first);
  }
}

/**
 * Every document of one log (from `offset` field value `from`, if given), in `offset` order,
 * where `offset` need not be unique: Airflow's shippers stamp lines with `time.time() * 1e9`
 * or a counter that a re-upload repeats, and at-least-once shipping repeats whole documents.
 * `search_after` on a tied `offset` would skip the rest of the tie, so each page resumes just
 * below the last offset (`search_after: [last - 1]`, exact as a string past 2^53) and skips the
 * hits it already returned there (by `_id`). Hits of one offset come in the order the cluster
 * gives them (the same for the same snapshot).
 */
export async function* allDocuments(
  search: SearchByOffset,
  options: {
    logIdQuery: estypes.QueryDslQueryContainer;
    from?: number;
    pageSize: number;
  },
): AsyncGenerator<Hit> {
  const { logIdQuery, pageSize } = options;
  const filter: estypes.QueryDslQueryContainer[] = [
    logIdQuery,
    options.from === undefined
      ? { exists: { field: 'offset' } }
      : { range: { offset: { gte: options.from } } },
  ];
  let lastKey: string | undefined;
  const seen = new Set<string>();
  for (;;) {
    const size = Math.min(pageSize + seen.size, MAX_PAGE_SIZE);
    if (seen.size >= size) {
      throw new IntegrityError(
        `${seen.size} documents of one log share the offset ${lastKey}; they cannot be paged`,
      );
    }
    const hits = await search({
      filter,
      size,
      ...(lastKey !== undefined ? { searchAfter: [justBelow(lastKey)] } : {}),
    });
    for (const hit of hits) {
      const value = hit.sort?.[0];
      if (value === undefined || value === null) return;
      const key = String(value);
      if (key === lastKey && seen.has(hit._id)) continue;
      if (key !== lastKey) {
        seen.clear();
        lastKey = key;
      }
      seen.add(hit._id);
      yield hit;
    }
    if (hits.length < size) return;
  }
}

/**
 * The sort value just below an offset: an integer's predecessor, exactly. (A fractional offset,
 * from a `double` mapping, is taken as it is: Airflow's `int(offset)` cannot page those either.)
 */
function justBelow(key: string): string | number {
  return /^-?\d+$/.test(key) ? (BigInt(key) - 1n).toString() : Number(key);
}
