import type { AttemptFilter, AttemptRecord, Catalog } from '@tasklog/core';
import { ForbiddenError, InvalidInputError, parseIntStrict, validateId } from '@tasklog/core';
import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import { principalOf } from '../auth/guard.js';
import { mayRead } from '../auth/principal.js';
import { intQueryParam, queryParam } from './query.js';

export const MAX_LIMIT = 10_000;
/** The catalog's own default page. */
export const DEFAULT_LIMIT = 1000;

/** One attempt as the API shows it: the key flattened, dates as ISO strings. */
export interface AttemptJson {
  dagId: string;
  runId: string;
  taskId: string;
  mapIndex: number;
  tryNumber: number;
  relativePath: string;
  state: string;
  size: number | null;
  sha256: string | null;
  storeUrl: string | null;
  /** The agent serving the live log of a running attempt. */
  agentUrl: string | null;
  createdAt: string;
  updatedAt: string;
  shippedAt: string | null;
  /** When the attempt's writer last said it was alive. */
  heartbeatAt: string | null;
  /** Airflow's state of the try when it ended, where known. */
  airflowState: string | null;
  /** The task's exit code, where known. */
  exitCode: number | null;
}

export function attemptJson(r: AttemptRecord): AttemptJson {
  return {
    dagId: r.key.dagId,
    runId: r.key.runId,
    taskId: r.key.taskId,
    mapIndex: r.key.mapIndex,
    tryNumber: r.key.tryNumber,
    relativePath: r.relativePath,
    state: r.state,
    size: r.size,
    sha256: r.sha256,
    storeUrl: r.storeUrl,
    agentUrl: r.agentUrl,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
    shippedAt: r.shippedAt ? r.shippedAt.toISOString() : null,
    heartbeatAt: r.heartbeatAt ? r.heartbeatAt.toISOString() : null,
    airflowState: r.airflowState,
    exitCode: r.exitCode,
  };
}

/**
 * `GET /api/v1/attempts?dagId=&runId=&taskId=&mapIndex=&tryNumber=&limit=` from the catalog: only
 * the DAGs the principal may read (asking for another one is 403), and agent and store URLs only
 * for the admin grant.
 */
export function attemptsRoute(deps: { catalog: Catalog; logger: Logger }): RequestHandler {
  return async (req, res) => {
    const principal = principalOf(res);
    const filter: { -readonly [K in keyof AttemptFilter]: AttemptFilter[K] } = {};
    for (const field of ['dagId', 'runId', 'taskId'] as const) {
      const value = queryParam(req, field);
      if (value !== undefined) filter[field] = validateId(field, value);
    }
    const mapIndex = intQueryParam(req, 'mapIndex', -1, Number.MAX_SAFE_INTEGER);
    if (mapIndex !== undefined) filter.mapIndex = mapIndex;
    const tryNumber = intQueryParam(req, 'tryNumber', 1, Number.MAX_SAFE_INTEGER);
    if (tryNumber !== undefined) filter.tryNumber = tryNumber;
    const limit = intQueryParam(req, 'limit', 1, MAX_LIMIT);
    if (filter.dagId !== undefined && !mayRead(principal, filter.dagId)) {
      deps.logger.warn(
        { principal: principal.name, dagId: filter.dagId, path: req.path },
        'access denied',
      );
      throw new ForbiddenError('you may not read the logs of this DAG');
    }
    // Without a DAG filter the catalog is read up to the largest page and cut after granting.
    const everything = filter.dagId === undefined && !principal.dags.includes('*');
    const records = (
      await deps.catalog.list(filter, { limit: everything ? MAX_LIMIT : (limit ?? DEFAULT_LIMIT) })
    )
      .filter((r) => mayRead(principal, r.key.dagId))
      .slice(0, limit ?? DEFAULT_LIMIT);
    const attempts = records
      .map(attemptJson)
      .map((a) => (principal.admin ? a : { ...a, agentUrl: null, storeUrl: null }));
    res.set('Cache-Control', 'no-store').json({ attempts });
  };
}
