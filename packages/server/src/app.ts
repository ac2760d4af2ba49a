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
import { requestLogger } from './request-logger.js';
import { attemptsRoute } from './routes/attempts-route.js';
import { healthRoute } from './routes/health-route.js';
import { logRoute } from './routes/log-route.js';
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
  app.use(requestLogger(deps.logger));
  app.use(securityHeaders);
  app.use(allowedHosts(deps.allowedHosts ?? [], deps.logger));

  app.get(
    '/health',
    healthRoute({
      catalog: deps.catalog,
      store: deps.store,
      timeoutMs: deps.healthTimeoutMs ?? 5000,
      auth: deps.auth,
    }),
  );
  // Everything below needs an authenticated principal.
  app.use(authenticate(deps.auth, deps.logger));
  app.get('/api/v1/attempts', attemptsRoute({ catalog: deps.catalog, logger: deps.logger }));
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
        limits: new FollowerLimits(
          deps.maxFollowers ?? Number.POSITIVE_INFINITY,
          deps.maxFollowersPerAttempt ?? Number.POSITIVE_INFINITY,
        ),
      },
      sendTimeoutMs: deps.sendTimeoutMs ?? 30_000,
    }),
  );

  app.use(notFoundHandler);
  app.use(errorHandler(deps.logger));
  return Object.assign(app, {
    liveHub,
    closeStores: () => {
      liveHub?.close();
      return stores.close();
    },
  });
}
