import { ForbiddenError } from '@tasklog/core';
import express, { type RequestHandler } from 'express';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { principalOf } from './auth/guard.js';
import { errorHandler, notFoundHandler } from './http-errors.js';

/**
 * The process's own metrics (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `nodejs_eventloop_lag_seconds`, ...), collected once per process and merged into every scrape.
 * They keep the client library's standard, unprefixed names, as Prometheus' conventions ask for
 * process metrics, so the usual Node.js dashboards read them. Collected once because each
 * collection starts a GC observer and an event-loop monitor that are never stopped: one per app
 * would pile up in a process (a test suite) that creates hundreds of apps.
 */
let processRegistry: Registry | undefined;

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * The metrics of one app (a proxy or an agent): its own prom-client registry, not the global one,
 * so that two apps in one process (and tests) never share or clash over a metric. Every name is
 * `tasklog_…`; no label holds an attempt, a run, a DAG or a path, so the series stay few.
 */
export class Metrics {
  readonly registry = new Registry();

  /** Prometheus' text exposition format (0.0.4): this app's metrics and the process's. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    const merged = Registry.merge([this.registry, processMetrics()]);
    return { contentType: merged.contentType, body: await merged.metrics() };
  }

  /**
   * `GET /metrics`. With `adminOnly` (the proxy) the authenticated principal needs the admin
   * grant, which `auth.mode = "none"` gives everyone; `authenticate()` must run before it.
   */
  route(options: { adminOnly?: boolean } = {}): RequestHandler {
    return async (_req, res, next) => {
      try {
        if (options.adminOnly && !principalOf(res).admin) {
          throw new ForbiddenError('the metrics need the admin grant');
        }
        const { contentType, body } = await this.scrape();
        res.status(200).set('Content-Type', contentType).set('Cache-Control', 'no-store');
        res.send(body);
      } catch (err) {
        next(err);
      }
    };
  }
}

/**
 * An app serving only `GET /metrics` (and 404 for the rest), for a port of its own
 * (`agent.metrics_port`): a scraper reaches it where the log port is closed to all but the proxy.
 */
export function createMetricsApp(metrics: Metrics, logger: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', metrics.route());
  app.use(notFoundHandler);
  app.use(errorHandler(logger));
  return app;
}

/**
 * The `backend` label of a store: its URL's scheme (`file`, `s3`, `gs`, `cloudwatch`,
 * `elasticsearch`, `cloud-logging`) — a handful of values, never the bucket or the path.
 */
export function backendOf(storeUrl: string): string {
  return /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(storeUrl)?.[1]?.toLowerCase() ?? 'unknown';
}
