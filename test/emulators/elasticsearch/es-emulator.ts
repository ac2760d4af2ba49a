/**
 * A wire-level emulator of the Elasticsearch 9 REST API, enough for the official
 * `@elastic/elasticsearch` client and for Airflow's Elasticsearch task handler: cluster info,
 * index create/exists/get/delete, mappings, single documents, `_bulk`, `_search` (a Query DSL
 * subset, sort, `search_after`, `from`/`size`, `_source`, `terms` and `composite` aggregations),
 * `_count`, `_refresh`, `_delete_by_query`; near-real-time visibility (see es-index.ts); the
 * service's error bodies and limits (`http.max_content_length`, `index.max_result_window`); and
 * per-request faults plus partial bulk failures (single items rejected with 429).
 * Routes: es-routes.ts (with es-bulk.ts and es-search.ts); state: es-cluster.ts.
 *
 * Every answer carries `X-Elastic-Product: Elasticsearch`: without it the v9 client refuses
 * the cluster (ProductNotSupportedError), and so does Debian's python3-elasticsearch 7.17 (its
 * product check on `GET /` wants the header from 7.14 on). Requests in plain `application/json`
 * (the 7.x client) or `compatible-with=8|9` (the 8.x and 9.x clients) are answered; 7 is
 * refused, as Elasticsearch 9 refuses it.
 *
 * Request and answer bodies keep integers exact past 2^53 (es-json.ts), as Elasticsearch does:
 * `offset` values of Airflow's shippers are nanoseconds, and a `long` holds up to 2^63-1.
 * Reference: https://www.elastic.co/docs/api/doc/elasticsearch/
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveEmulator } from '../shared/emulator-server.js';
import { FaultInjector, type FaultStatus } from '../shared/fault-injector.js';
import { applyHttpFault, faultControl, isControlPath } from '../shared/faults.js';
import { cannotAnswer, drain } from '../shared/http-exchange.js';
import { type HttpRequestLogEntry, logHttpRequest } from '../shared/request-log.js';
import { type BulkItemFaultOptions, EsCluster } from './es-cluster.js';
import { EsApiError, esErrors } from './es-errors.js';
import {
  authRequired,
  type Ctx,
  checkAuth,
  checkMediaTypes,
  type EsAuth,
  injectedError,
  JSON_TYPE,
  readEsJson,
  send,
  sendError,
} from './es-http.js';
import { ShardError } from './es-query.js';
import { route } from './es-routes.js';

export type { BulkItemFaultOptions } from './es-cluster.js';

export interface ElasticsearchEmulatorOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Port; default 0 (any free port). */
  port?: number;
  /**
   * Default `index.refresh_interval` in ms: how long a write stays invisible to searches
   * without an explicit refresh. Default 1000 (Elasticsearch's `1s`); -1 never.
   */
  refreshIntervalMs?: number;
  /** `http.max_content_length`: larger request bodies get 413. Default 100 MiB. */
  maxContentLength?: number;
  /** Reported in `GET /`. Default `9.1.0`. */
  version?: string;
  /** Send `X-Elastic-Product: Elasticsearch`; default true (false imitates a foreign server). */
  productHeader?: boolean;
  /** Require these credentials (basic or `Authorization: ApiKey`); default none. */
  auth?: EsAuth;
}

export interface RequestLogEntry extends HttpRequestLogEntry {
  /** For `_bulk`: how many items were rejected with 429 inside a 200 answer. */
  rejectedItems?: number;
}

export interface ElasticsearchEmulator {
  /** `http://HOST:PORT`, the client's `node`. */
  readonly url: string;
  readonly port: number;
  /** Whole-request faults: statuses (429 → es_rejected_execution_exception), resets, delays. */
  readonly faults: FaultInjector;
  /** Partial bulk failures; `undefined` turns them off. */
  failBulkItems(options: BulkItemFaultOptions | undefined): void;
  /** Creates an index (settings, mappings) unless it exists. */
  createIndex(name: string, body?: { settings?: unknown; mappings?: unknown }): void;
  /** Refreshes one index or all. */
  refresh(index?: string): void;
  /** Every live document of an index (refreshed or not), in index order; [] if it is missing. */
  documents(index: string): { id: string; source: Record<string, unknown> }[];
  /** The last 10,000 requests, oldest first (control requests under `/_emulator` excluded). */
  readonly requestLog: RequestLogEntry[];
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

const DEFAULT_MAX_CONTENT_LENGTH = 100 * 1024 * 1024;

export async function startElasticsearchEmulator(
  options: ElasticsearchEmulatorOptions = {},
): Promise<ElasticsearchEmulator> {
  const maxContentLength = options.maxContentLength ?? DEFAULT_MAX_CONTENT_LENGTH;
  const productHeader = options.productHeader ?? true;
  const faults = new FaultInjector();
  const requestLog: RequestLogEntry[] = [];
  const closing = new AbortController();
  const cluster = new EsCluster(
    options.refreshIntervalMs ?? 1000,
    options.version ?? '9.1.0',
    closing.signal,
  );

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const url = new URL(target, 'http://emulator');
    const ctx: Ctx = {
      req,
      res,
      query: url.searchParams,
      contentType: JSON_TYPE,
      productHeader,
      maxContentLength,
    };
    const control = isControlPath(url.pathname);
    if (!control) {
      logHttpRequest(requestLog, ctx, () =>
        ctx.rejectedItems ? { rejectedItems: ctx.rejectedItems } : {},
      );
    }
    try {
      if (control) return await handleControl(ctx, url.pathname);
      const media = checkMediaTypes(ctx);
      if (media === 'unsupported') {
        await drain(req);
        // Elasticsearch answers this one with a bare string as `error`.
        return send(ctx, 406, {
          error: `Content-Type header [${req.headers['content-type']}] is not supported`,
          status: 406,
        });
      }
      if (media) {
        await drain(req);
        return sendError(ctx, media);
      }
      if (!checkAuth(req, options.auth)) {
        await drain(req);
        return sendError(ctx, authRequired(url.pathname));
      }
      const fault = faults.pick({ method: req.method ?? 'GET', path: target });
      const answerStatus = (status: FaultStatus) => sendError(ctx, injectedError(status));
      if (await applyHttpFault(ctx, fault, answerStatus, closing.signal)) return;
      await route(ctx, cluster, url.pathname);
    } catch (err) {
      if (cannotAnswer(err, ctx, closing.signal)) return;
      if (err instanceof ShardError) return sendError(ctx, esErrors.searchPhase(err));
      if (err instanceof EsApiError) return sendError(ctx, err);
      sendError(ctx, esErrors.internal(String(err)));
    }
  }

  /**
   * Test control over HTTP, for an emulator in its own process: the shared fault and
   * request-log routes (../shared/faults.ts), and
   *   POST   /_emulator/bulk-item-faults { probability, seed } ({} turns them off)
   */
  async function handleControl(ctx: Ctx, pathname: string): Promise<void> {
    const method = ctx.req.method ?? 'GET';
    const path = pathname.replace(/\/+$/, '');
    const invalid = (message: string) => esErrors.illegalArgument(message);
    const target = { faults, requestLog };
    const shared = await faultControl(
      ctx,
      `${method} ${path}`,
      target,
      () => readEsJson(ctx),
      invalid,
    );
    if (shared) return send(ctx, shared.status, shared.body);
    if (`${method} ${path}` === 'POST /_emulator/bulk-item-faults') {
      const body = await readEsJson(ctx);
      cluster.failBulkItems(
        typeof body.probability === 'number'
          ? {
              probability: body.probability,
              ...(typeof body.seed === 'number' ? { seed: body.seed } : {}),
            }
          : undefined,
      );
      return send(ctx, 200, {});
    }
    await drain(ctx.req);
    throw esErrors.noHandler(method, pathname);
  }

  const release = () => cluster.close();
  return {
    ...(await serveEmulator(handle, options, { faults, requestLog, closing, release })),
    failBulkItems: (opts) => cluster.failBulkItems(opts),
    createIndex(name, body = {}) {
      if (!cluster.indices.has(name)) cluster.createIndex(name, body);
    },
    refresh(name) {
      for (const index of name ? cluster.resolve(name) : cluster.indices.values()) index.refresh();
    },
    documents(name) {
      const docs = cluster.indices.get(name)?.liveDocs() ?? [];
      return docs.map((d) => ({ id: d.id, source: d.source }));
    },
  };
}
