import { resolve } from 'node:path';
import type { AgentTokenKeys, LogStore, PathTemplate } from '@tasklog/core';
import express, { type RequestHandler } from 'express';
import type { Logger } from 'pino';
import { errorHandler, notFoundHandler } from '../http-errors.js';
import { requestLogger } from '../request-logger.js';
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
}

/**
 * The worker-side HTTP API: `GET /log/<relative path>` serves the live local log of a running
 * attempt to the proxy (token required) and, with `airflow`, to Airflow's webserver / API server
 * as `airflow serve-logs` would; `GET /health` says the agent is up.
 */
export function createAgentApp(deps: AgentAppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestLogger(deps.logger));
  app.get('/health', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ status: 'ok', ...deps.status?.() });
  });
  const baseLogFolder = resolve(deps.baseLogFolder);
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
