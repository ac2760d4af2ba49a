import type { RequestHandler } from 'express';
import { Counter, Histogram } from 'prom-client';
import type { Metrics } from './metrics.js';
import { OPENAPI_PATH } from './openapi/paths.js';

/**
 * The `route` label of the proxy: a fixed set, so that no path (with its DAG, run and task ids)
 * ever becomes a label value. Unknown paths, 404s included, are `other`.
 */
export type ProxyRoute =
  | 'log'
  | 'search'
  | 'attempts'
  | 'browse'
  | 'health'
  | 'metrics'
  | 'openapi'
  | 'ui'
  | 'other';

/** The `route` label of an agent. */
export type AgentRoute = 'log' | 'health' | 'metrics' | 'other';

const ATTEMPT_PATH = /^\/api\/v1\/dags\/[^/]+\/runs\/[^/]+\/tasks\/[^/]+\/attempts\/[^/]+\/log/;

/** Which of the proxy's routes `path` (the request's path, without its query) belongs to. */
export function proxyRouteOf(path: string): ProxyRoute {
  if (path === '/metrics') return 'metrics';
  if (path === '/health' || path.startsWith('/health/')) return 'health';
  if (path.startsWith('/api/')) {
    const attempt = ATTEMPT_PATH.exec(path);
    if (attempt) {
      const rest = path.slice(attempt[0].length);
      return rest === '' ? 'log' : rest === '/search' ? 'search' : 'other';
    }
    if (path === '/api/v1/attempts') return 'attempts';
    if (path === OPENAPI_PATH) return 'openapi';
    if (path === '/api/v1/dags' || path.startsWith('/api/v1/dags/')) return 'browse';
    return 'other';
  }
  if (path === '/' || path === '/dags' || path.startsWith('/dags/')) return 'ui';
  if (path.startsWith('/assets/')) return 'ui';
  return 'other';
}

/** Which of an agent's routes `path` belongs to. */
export function agentRouteOf(path: string): AgentRoute {
  if (path === '/metrics') return 'metrics';
  if (path === '/health' || path.startsWith('/health/')) return 'health';
  if (path.startsWith('/log/')) return 'log';
  return 'other';
}

/**
 * Registers `tasklog_http_request_duration_seconds{route,method,status}` and
 * `tasklog_http_response_bytes_total{route}` in `metrics` and returns the middleware that feeds
 * them; it must come before every route. A request's duration is observed when its response
 * closes, finished or cut off (a live follow's once it ends); its body bytes are counted as they
 * are written (HEAD responses have none).
 */
export function httpMetrics(
  metrics: Metrics,
  routeOf: (path: string) => ProxyRoute | AgentRoute,
): RequestHandler {
  const duration = new Histogram({
    name: 'tasklog_http_request_duration_seconds',
    help: 'Time from a request to the end of its response, by route, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    // Long tails included: a log download or a live follow runs for minutes.
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [metrics.registry],
  });
  const bytes = new Counter({
    name: 'tasklog_http_response_bytes_total',
    help: 'Response body bytes sent, by route.',
    labelNames: ['route'] as const,
    registers: [metrics.registry],
  });
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    // Taken now: routers rewrite req.url while they run.
    const route = routeOf(req.path);
    // Only the methods HTTP defines, so a client cannot invent label values.
    const method = KNOWN_METHODS.has(req.method) ? req.method : 'OTHER';
    if (req.method !== 'HEAD') {
      // Counted as they go, so that a live follow's bytes show while it runs.
      const sent = bytes.labels({ route });
      const write = res.write;
      const end = res.end;
      const count = (chunk: unknown, encoding: unknown) => {
        if (typeof chunk === 'string') {
          const enc = typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8';
          sent.inc(Buffer.byteLength(chunk, enc));
        } else if (chunk instanceof Uint8Array && chunk.byteLength > 0) sent.inc(chunk.byteLength);
      };
      res.write = function (this: typeof res, chunk: unknown, ...rest: unknown[]) {
        count(chunk, rest[0]);
        return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
      } as typeof res.write;
      res.end = function (this: typeof res, chunk?: unknown, ...rest: unknown[]) {
        if (typeof chunk !== 'function') count(chunk, rest[0]);
        return (end as (...args: unknown[]) => typeof res).call(this, chunk, ...rest);
      } as typeof res.end;
    }
    res.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      duration.observe({ route, method, status: String(res.statusCode) }, seconds);
    });
    next();
  };
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);
