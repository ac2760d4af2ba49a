import { resolve } from 'node:path';
import type { AgentTokenKeys, PathTemplate } from '@tasklog/core';
import express from 'express';
import type { Logger } from 'pino';
import { errorHandler, notFoundHandler } from '../http-errors.js';
import { requestLogger } from '../request-logger.js';
import { agentLogRoute } from './agent-log-route.js';

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
}

/**
 * The worker-side HTTP API: `GET /log/<relative path>` serves the live local log of a running
 * attempt to the proxy (token required), `GET /health` says the agent is up.
 */
export function createAgentApp(deps: AgentAppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestLogger(deps.logger));
  app.get('/health', (_req, res) => {
    res.set('Cache-Control', 'no-store').json({ status: 'ok' });
  });
  // A RegExp route: named wildcards would hand us express's decoded params, and the relative
  // path must be decoded exactly once, by us, from the raw URL.
  app.get(
    /^\/log\/.+/,
    agentLogRoute({
      baseLogFolder: resolve(deps.baseLogFolder),
      pathTemplate: deps.pathTemplate,
      keys: deps.keys,
      isFinished: deps.isFinished,
      pollIntervalMs: deps.pollIntervalMs,
    }),
  );
  app.use(notFoundHandler);
  app.use(errorHandler(deps.logger));
  return app;
}
