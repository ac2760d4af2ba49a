import type { AgentTokenKeys, Catalog, LogStore, PathTemplate } from '@tasklog/core';
import express from 'express';
import type { Logger } from 'pino';
import type { Authenticator } from './auth/authenticator.js';
import { authenticate, requireDagGrant } from './auth/guard.js';
import { allowedHosts, securityHeaders } from './hardening.js';
import { errorHandler, notFoundHandler } from './http-errors.js';
import type { AgentUrlPolicy } from './live/agent-url-policy.js';
import type { FollowTimings } from './live/follow-log.js';
import { FollowerLimits } from './live/follow-route.js';
import { LiveHub } from './live/live-hub.js';
import { Metrics } from './metrics.js';
import { httpMetrics, proxyRouteOf } from './metrics-http.js';
import { liveMetrics } from './metrics-live.js';
import { OPENAPI_PATH, openApiRoute } from './openapi/document.js';
import { requestLogger } from './request-logger.js';
import { attemptsRoute } from './routes/attempts-route.js';
import { browseRoute } from './routes/browse-route.js';
import { healthRoute, liveRoute } from './routes/health-route.js';
import { logRoute } from './routes/log-route.js';
import { searchRoute } from './routes/search-route.js';
import { DEFAULT_UI_DIR, uiRoutes } from './routes/ui-route.js';
import { StoreResolver } from './store-resolver.js';

export interface AppDeps {
  /** The configured archive; read when the catalog names no other store for an attempt. */
  store: LogStore;
  catalog: Catalog;
  /** The layout the archive uses; a key it cannot represent is rejected with 400. */
  pathTemplate: PathTemplate;
  logger: Logger;
  /**
   * Opens a store by URL, for attempts whose catalog `storeUrl` differs from `store.url`
   * (archived before a migration). Opened stores are cached; without it such attempts get 503.
   */
  openStore?: (url: string) => Promise<LogStore>;
  /** The store URLs besides `store.url` that `openStore` may open (`store.read_urls`). */
  readStoreUrls?: readonly string[];
  /** Which agent URLs from the catalog may be reached (`agent.allowed_urls`). */
  agentUrlPolicy?: AgentUrlPolicy;
  /** How long /health waits for each of catalog and store; default 5000 ms. */
  healthTimeoutMs?: number;
  /**
   * Signs the tokens with which `?follow=true` asks a running attempt's agent for its live log.
   * Without it, follow reads the archive only.
   */
  agentTokenKeys?: AgentTokenKeys;
  /** Tuning of `?follow=true` (poll intervals, hand-over timeout, ring size); defaults documented there. */
  live?: FollowTimings & { ringBytes?: number; heartbeatMs?: number };
  /**
   * Host names the proxy answers to (`server.allowed_hosts`; `*.example.com` for one label);
   * empty or missing: any.
   */
  allowedHosts?: readonly string[];
  /** Followers at once, in all and per attempt (`server.max_followers*`); default unlimited. */
  maxFollowers?: number;
  maxFollowersPerAttempt?: number;
  /** A client that takes no byte for this long is cut off (`server.send_timeout`); default 30 s. */
  sendTimeoutMs?: number;
  /**
   * Who may read what (`[auth]`). Without it (`auth.mode = "none"`, allowed on loopback only)
   * every caller may read everything.
   */
  auth?: Authenticator;
  /** Serve the log viewer at `/` (`server.ui`); default true. */
  ui?: boolean;
  /** Where the built viewer is; default `packages/server/ui/` next to this package's `dist/`. */
  uiDir?: string;
  /** How long one log search may run (`server.search_time_limit`); default 10,000 ms. */
  searchTimeLimitMs?: number;
  /** Regular-expression searches at once (each on a worker thread); default: the cores. */
  maxWorkerSearches?: number;
}

/** The Express app, plus a way to release the stores it opened through `openStore`. */
export type TasklogApp = express.Express & {
  /**
   * Closes stores opened through `openStore` and the live upstreams; `deps.store` and
   * `deps.catalog` stay the caller's.
   */
  closeStores(): Promise<void>;
  /** Shares agent connections among followers; present when `agentTokenKeys` is given. */
  liveHub?: LiveHub;
  /** What `GET /metrics` serves: this app's own registry (see metrics.ts). */
  metrics: Metrics;
};

/** The log proxy's HTTP API over an archive store and the catalog. */
export function createApp(deps: AppDeps): TasklogApp {
  const stores = new StoreResolver(deps.store, deps.openStore, deps.readStoreUrls);
  const { ringBytes, heartbeatMs, ...timings } = deps.live ?? {};
  const liveHub = deps.agentTokenKeys
    ? new LiveHub({ keys: deps.agentTokenKeys, ringBytes, policy: deps.agentUrlPolicy })
    : undefined;
  const app = express();
  app.disable('x-powered-by');
  // The log route sets its own content-hash ETags; hashing every JSON answer buys nothing.
  app.set('etag', false);
  const metrics = new Metrics();
  // Each response is watched for its end by a fixed set of observers (request log, metrics,
  // client-gone signal, idle cut-off, the body's pipeline…): about a dozen `close` listeners on
  // a log download, more than Node's default warning threshold, none accumulating.
  app.use((_req, res, next) => {
    res.setMaxListeners(Math.max(res.getMaxListeners(), 24));
    next();
  });
  app.use(httpMetrics(metrics, proxyRouteOf));
  app.use(requestLogger(deps.logger));
  app.use(securityHeaders);
  // `/health/live`: the process answers; `/health/ready` (and `/health`): catalog and store too.
  // Before the host check: probes (Kubernetes, load balancers) send the pod's address as Host, and
  // what these answer a caller without the admin grant is only "ok" or "unavailable".
  app.get('/health/live', liveRoute);
  app.get(
    ['/health', '/health/ready'],
    healthRoute({
      catalog: deps.catalog,
      store: deps.store,
      timeoutMs: deps.healthTimeoutMs ?? 5000,
      auth: deps.auth,
    }),
  );
  app.use(allowedHosts(deps.allowedHosts ?? [], deps.logger));
  if (deps.ui ?? true) app.use(uiRoutes(deps.uiDir ?? DEFAULT_UI_DIR));
  // The API's description holds no data: open to all, like the viewer's files.
  app.get(OPENAPI_PATH, openApiRoute());
  // Everything below needs an authenticated principal.
  app.use(authenticate(deps.auth, deps.logger));
  // Aggregates only (no attempt, DAG or path in any label), yet they tell how busy the service is:
  // the admin grant with auth, anyone without it (auth.mode = "none" is loopback-only).
  app.get('/metrics', metrics.route({ adminOnly: true }));
  app.get('/api/v1/attempts', attemptsRoute({ catalog: deps.catalog, logger: deps.logger }));
  const browse = { catalog: deps.catalog, logger: deps.logger };
  app.get('/api/v1/dags', browseRoute('dags', browse));
  app.get('/api/v1/dags/:dagId/runs', browseRoute('runs', browse));
  app.get('/api/v1/dags/:dagId/runs/:runId/tasks', browseRoute('tasks', browse));
  app.get(
    '/api/v1/dags/:dagId/runs/:runId/tasks/:taskId/attempts/:tryNumber/log/search',
    requireDagGrant(deps.logger),
    searchRoute({
      catalog: deps.catalog,
      pathTemplate: deps.pathTemplate,
      stores,
      timeLimitMs: deps.searchTimeLimitMs ?? 10_000,
      maxWorkerSearches: deps.maxWorkerSearches,
    }),
  );
  const limits: FollowerLimits = new FollowerLimits(
    deps.maxFollowers ?? Number.POSITIVE_INFINITY,
    deps.maxFollowersPerAttempt ?? Number.POSITIVE_INFINITY,
    liveMetrics(metrics, { limits: () => limits, hub: liveHub }),
  );
  app.get(
    '/api/v1/dags/:dagId/runs/:runId/tasks/:taskId/attempts/:tryNumber/log',
    requireDagGrant(deps.logger),
    logRoute({
      catalog: deps.catalog,
      pathTemplate: deps.pathTemplate,
      stores,
      follow: {
        hub: liveHub,
        timings,
        heartbeatMs,
        sendTimeoutMs: deps.sendTimeoutMs,
        limits,
      },
      sendTimeoutMs: deps.sendTimeoutMs ?? 30_000,
    }),
  );

  app.use(notFoundHandler);
  app.use(errorHandler(deps.logger));
  return Object.assign(app, {
    liveHub,
    metrics,
    closeStores: () => {
      liveHub?.close();
      return stores.close();
    },
  });
}
