import type { Catalog, GroupLevel, GroupQuery, GroupsOf } from '@tasklog/core';
import { ForbiddenError, InvalidInputError, parseIntStrict, validateId } from '@tasklog/core';
import type { Request, RequestHandler } from 'express';
import type { Logger } from 'pino';
import { principalOf } from '../auth/guard.js';
import { mayRead } from '../auth/principal.js';
import { intQueryParam, queryParam } from './query.js';

export const MAX_LIMIT = 1000;
export const DEFAULT_LIMIT = 100;
export const MAX_QUERY_CHARS = 250;

/** Each level's groups as the API shows them: dates as ISO strings. */
const shape = {
  dags: (g: GroupsOf['dags']) => ({
    dagId: g.dagId,
    attempts: g.attempts,
    running: g.running,
    lastUpdatedAt: g.lastUpdatedAt.toISOString(),
  }),
  runs: (g: GroupsOf['runs']) => ({
    runId: g.runId,
    attempts: g.attempts,
    running: g.running,
    lastUpdatedAt: g.lastUpdatedAt.toISOString(),
  }),
  tasks: (g: GroupsOf['tasks']) => ({
    taskId: g.taskId,
    mapIndex: g.mapIndex,
    attempts: g.attempts,
    latestTry: g.latestTry,
    state: g.state,
    size: g.size,
    lastUpdatedAt: g.lastUpdatedAt.toISOString(),
  }),
};

/**
 * The attempt browser's levels, newest first, paged (`q`, `limit` 1..1000, `offset`):
 * `GET /api/v1/dags` (the DAGs the principal may read, counted in the catalog's query so pages
 * and counts hold granted DAGs only), `…/dags/:dagId/runs` and `…/runs/:runId/tasks` (403 for a
 * DAG not granted, checked before the catalog is asked).
 */
export function browseRoute<L extends GroupLevel>(
  level: L,
  deps: { catalog: Catalog; logger: Logger },
): RequestHandler {
  return async (req, res) => {
    const principal = principalOf(res);
    const params = req.params as Record<string, string | undefined>;
    const q = queryParam(req, 'q');
    if (q !== undefined && q.length > MAX_QUERY_CHARS) {
      throw new InvalidInputError(`q must be at most ${MAX_QUERY_CHARS} characters`);
    }
    const query: GroupQuery = {
      q: q === '' ? undefined : q,
      limit: intQueryParam(req, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT),
      offset: intQueryParam(req, 'offset', 0, Number.MAX_SAFE_INTEGER, 0),
      dags: principal.dags,
    };
    if (level !== 'dags') {
      const dagId = validateId('dagId', params.dagId);
      if (!mayRead(principal, dagId)) {
        deps.logger.warn({ principal: principal.name, dagId, path: req.path }, 'access denied');
        throw new ForbiddenError('you may not read the logs of this DAG');
      }
      query.dagId = dagId;
    }
    if (level === 'tasks') query.runId = validateId('runId', params.runId);
    const page = await deps.catalog.groups(level, query);
    const show = shape[level] as (g: GroupsOf[L]) => object;
    res.set('Cache-Control', 'no-store').json({ [level]: page.groups.map(show), next: page.next });
  };
}
