import { access, constants } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { AgentTokenKeys, LogStore, PathTemplate } from '@tasklog/core';
import express, { type RequestHandler } from 'express';
import type { Logger } from 'pino';
import { errorHandler, notFoundHandler } from '../http-errors.js';
import type { Metrics } from '../metrics.js';
import { agentRouteOf, httpMetrics } from '../metrics-http.js';
import { requestLogger } from '../request-logger.js';
import { liveRoute, probe } from '../routes/health-route.js';
import { agentLogRoute } from './agent-log-route.js';
import { airflowLogRoute, isAirflowLogRequest } from './airflow-log-route.js';

export interface AgentAppDeps {
  /** Absolute folder the workers write logs under. */
  baseLogFolder: string;
  pathTemplate: PathTemplate;
  /** Verification keys for the proxy's agent tokens. */
  keys: AgentTokenKeys;
  logger: Logger;
  /** Whether an attempt has finished; default: its completion marker (`<file>.done`) exists. */
  isFinished?: (file: string) => Promise<boolean>;
  /** How often a followed log is checked for new bytes; default 100 ms. */
  pollIntervalMs?: number;
  /**
   * Also answer Airflow's own log-server requests (`airflow serve-logs`), so the agent can take
   * its place: `agent.airflow_secret_key` and `agent.airflow_clock_grace`.
   */
  airflow?: { secretKey: string; clockGraceSeconds: number };
  /** Where Airflow's requests for an attempt whose local file is gone are answered from. */
  archive?: LogStore;
  /** The watcher's state for `/health` (following, backlog, failing ships, store outage). */
  status?: () => object | undefined;
  /**
   * Observe the requests in `metrics`; with `serveMetrics`, also serve them at `GET /metrics`,
   * without a token: they are aggregates (no attempt, DAG or path in any label), like `/health`.
   */
  metrics?: Metrics;
  serveMetrics?: boolean;
}

/**
 * The worker-side HTTP API: `GET /log/<relative path>` serves the live local log of a running
 * attempt to the proxy (token required) and, with `airflow`, to Airflow's webserver / API server
 * as `airflow serve-logs` would; `GET /health` says the agent is up; `GET /metrics`
 * (with `serveMetrics`) serves its metrics.
 */
export function createAgentApp(deps: AgentAppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  if (deps.metrics) app.use(httpMetrics(deps.metrics, agentRouteOf));
  app.use(requestLogger(deps.logger));
  const baseLogFolder = resolve(deps.baseLogFolder);
  app.get('/health', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ status: 'ok', ...deps.status?.() });
  });
  app.get('/health/live', liveRoute);
  if (deps.metrics && deps.serveMetrics) app.get('/metrics', deps.metrics.route());
  app.get('/health/ready', agentReadyRoute(baseLogFolder, deps.archive));
  const tasklogRoute = agentLogRoute({
    baseLogFolder,
    pathTemplate: deps.pathTemplate,
    keys: deps.keys,
    isFinished: deps.isFinished,
    pollIntervalMs: deps.pollIntervalMs,
  });
  let logRoute: RequestHandler = tasklogRoute;
  if (deps.airflow) {
    const airflowRoute = airflowLogRoute({
      baseLogFolder,
      pathTemplate: deps.pathTemplate,
      secretKey: deps.airflow.secretKey,
      clockGraceSeconds: deps.airflow.clockGraceSeconds,
      archive: deps.archive,
    });
    // The token's unverified audience only picks the verifier; each one then checks the token
    // with its own key and algorithm. Without `airflow`, an Airflow token meets only tasklog's.
    logRoute = (req, res, next) =>
      (isAirflowLogRequest(req.get('authorization')) ? airflowRoute : tasklogRoute)(req, res, next);
  }
  // A RegExp route: named wildcards would hand us express's decoded params, and the relative
  // path must be decoded exactly once, by us, from the raw URL.
  app.get(/^\/log\/.+/, logRoute);
  app.use(notFoundHandler);
  app.use(errorHandler(deps.logger));
  return app;
}

/**
 * `GET /health/ready`: the agent can do its work: the base log folder can be read, and the archive
 * (when the agent has one) answers within 5 s. 503 names what failed; the folder's path is not
 * shown, the error is.
 */
function agentReadyRoute(baseLogFolder: string, archive: LogStore | undefined): RequestHandler {
  return async (_req, res) => {
    const [folder, store] = await Promise.all([
      probe(
        () =>
          access(baseLogFolder, constants.R_OK | constants.X_OK).catch(
            (err: NodeJS.ErrnoException) => {
              throw new Error(`the base log folder cannot be read (${err.code ?? 'error'})`, {
                cause: err,
              });
            },
          ),
        5000,
      ),
      archive ? probe((signal) => archive.ping({ signal }), 5000) : undefined,
    ]);
    const ok = folder.ok && (store?.ok ?? true);
    res
      .status(ok ? 200 : 503)
      .set('Cache-Control', 'no-store')
      .json({
        status: ok ? 'ok' : 'unavailable',
        baseLogFolder: folder,
        ...(store ? { store } : {}),
      });
  };
}
