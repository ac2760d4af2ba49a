import { availableParallelism } from 'node:os';
import type { Catalog, PathTemplate } from '@tasklog/core';
import {
  BackendUnavailableError,
  formatAttempt,
  InvalidInputError,
  NotFoundError,
  OffsetOutOfRangeError,
  parseIntStrict,
} from '@tasklog/core';
import type { Request, RequestHandler } from 'express';
import { clientGoneSignal } from '../client-gone.js';
import { logRegions } from '../search/log-regions.js';
import { planSearch, type SearchQuery, searchLog } from '../search/log-search.js';
import type { StoreResolver } from '../store-resolver.js';
import { attemptKeyOf, checkedChunks } from './log-route.js';
import { intQueryParam, queryParam } from './query.js';

export const MAX_QUERY_CHARS = 1000;
export const MAX_LIMIT = 1000;
export const DEFAULT_LIMIT = 200;

function flag(req: Request, name: string): boolean {
  const value = queryParam(req, name);
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1') return true;
  throw new InvalidInputError(`${name} must be true or false, got "${value}"`);
}

function parseSearch(req: Request): SearchQuery & { offset: number } {
  const q = queryParam(req, 'q') ?? '';
  if (q.length === 0 || q.length > MAX_QUERY_CHARS) {
    throw new InvalidInputError(`q must be 1 to ${MAX_QUERY_CHARS} characters`);
  }
  return {
    q,
    regex: flag(req, 'regex'),
    caseSensitive: flag(req, 'case'),
    offset: intQueryParam(req, 'offset', 0, Number.MAX_SAFE_INTEGER, 0),
    limit: intQueryParam(req, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT),
  };
}

/**
 * `GET …/attempts/:tryNumber/log/search?q=&regex=&case=&offset=&limit=` — finds `q` in the whole
 * log as the plain log read sees it (the archive, or what is stored of a running attempt),
 * streaming from `offset`, until `limit` matches or the time limit; the answer says where to
 * resume. Memory stays bounded by one store chunk and one 64 KiB window, whatever the log's size.
 */
export function searchRoute(deps: {
  catalog: Catalog;
  pathTemplate: PathTemplate;
  stores: StoreResolver;
  /** How long one search may run (`server.search_time_limit`). */
  timeLimitMs: number;
  /**
   * Searches on worker threads at once (regular expressions); default: the machine's cores.
   * Each holds a thread for up to the time limit, so a reader cannot start them without bound.
   */
  maxWorkerSearches?: number;
}): RequestHandler {
  const maxWorkerSearches = deps.maxWorkerSearches ?? availableParallelism();
  let workerSearches = 0;
  return async (req, res) => {
    const key = attemptKeyOf(req);
    const { offset, ...query } = parseSearch(req);
    // Throws InvalidInputError when the configured layout cannot hold this key unambiguously.
    deps.pathTemplate.render(key);
    // An invalid pattern is a 400 before anything is looked up; the worker starts on first use.
    const plan = planSearch(query);
    if (plan.onWorker && workerSearches >= maxWorkerSearches) {
      plan.close();
      throw new BackendUnavailableError(
        `${maxWorkerSearches} regular-expression searches are running, as many as this server runs at once; try again in a moment`,
      );
    }
    if (plan.onWorker) workerSearches++;
    const clientGone = clientGoneSignal(res);
    // The clock starts with the request: looking the attempt up is part of its time. A timer and
    // a controller held here, not AbortSignal.any over AbortSignal.timeout: on Node 20 the timeout
    // signal inside `any` can be garbage-collected before it fires (nodejs/node#57736), and the
    // search would then run past its limit.
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new Error('search time limit')),
      deps.timeLimitMs,
    );
    const onGone = () => deadline.abort(clientGone.reason);
    if (clientGone.aborted) onGone();
    else clientGone.addEventListener('abort', onGone, { once: true });
    const stop = deadline.signal;
    try {
      const record = await deps.catalog.get(key);
      const store = await deps.stores.forUrl(record?.storeUrl);
      const stat = await store.stat(key, { signal: clientGone });
      if (!stat) {
        throw new NotFoundError(
          record
            ? `the archive holds no log for attempt ${formatAttempt(key)} yet`
            : `unknown attempt ${formatAttempt(key)}`,
        );
      }
      if (offset > stat.size) throw new OffsetOutOfRangeError(offset, stat.size);
      const end = stat.complete ? stat.size : undefined;
      const chunks = checkedChunks(store.read(key, { offset, end, signal: stop }), offset, end);
      const outcome = await searchLog(logRegions(chunks, offset), offset, plan, stop);
      if (clientGone.aborted) return;
      res.set('Cache-Control', 'no-store').json({
        matches: outcome.matches,
        scannedFrom: outcome.scannedFrom,
        scannedTo: outcome.scannedTo,
        // A running log may have grown past what stat() saw.
        size: Math.max(stat.size, outcome.done ? outcome.scannedTo : 0),
        done: outcome.done,
        stopped: outcome.stopped,
      });
    } finally {
      clearTimeout(timer);
      clientGone.removeEventListener('abort', onGone);
      if (plan.onWorker) workerSearches--;
      plan.close();
    }
  };
}
