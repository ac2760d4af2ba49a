/**
 * A wire-level emulator of the Elasticsearch 9 REST API, enough for the official
 * `@elastic/elasticsearch` client and for Airflow's Elasticsearch task handler: cluster info,
 * index create/exists/get/delete, mappings, single documents, `_bulk`, `_search` (a Query DSL
 * subset, sort, `search_after`, `from`/`size`, `_source`, `terms` and `composite` aggregations),
 * `_count`, `_refresh`, `_delete_by_query`; near-real-time visibility (see es-index.ts); the
 * service's error bodies and limits (`http.max_content_length`, `index.max_result_window`); and
 * per-request faults plus partial bulk failures (single items rejected with 429).
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
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  FaultInjector,
  type FaultMatch,
  type FaultStatus,
  type RandomFaultOptions,
} from '../gcs/fault-injector.js';
import { EsApiError, esErrors } from './es-errors.js';
import { EsIndex, type StoredDoc } from './es-index.js';
import { parseJson, stringifyJson } from './es-json.js';
import { Mapping } from './es-mapping.js';
import {
  compareSortValues,
  compileAggs,
  compileQuery,
  compileSort,
  parseSearchAfter,
  ShardError,
  type SortKey,
  sortValues,
} from './es-query.js';

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
  auth?: { username: string; password: string } | { apiKey: string };
}

export interface RequestLogEntry {
  method: string;
  /** Raw request target: path and query. */
  path: string;
  /** Status sent; 0 when the connection was dropped without an answer. */
  status: number;
  /** For `_bulk`: how many items were rejected with 429 inside a 200 answer. */
  rejectedItems?: number;
}

export interface BulkItemFaultOptions {
  /** Share (0..1) of bulk items answered 429 `es_rejected_execution_exception` (not applied). */
  probability: number;
  seed?: number;
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

interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  /** The answer's Content-Type (compatible-with=9 when the client asked for it). */
  contentType: string;
  /** `resetAfterCommit`: do the work, then drop the connection instead of answering. */
  dropAnswer?: boolean;
  truncateAfter?: number;
  rejectedItems?: number;
}

const REQUEST_LOG_LIMIT = 10_000;
const DEFAULT_MAX_CONTENT_LENGTH = 100 * 1024 * 1024;
const JSON_TYPE = 'application/json';
const COMPAT_TYPE = 'application/vnd.elasticsearch+json;compatible-with=9';
const INDEX_FORBIDDEN = /[\\/*?"<>| ,#:]/;

class ClientGone extends Error {}

export async function startElasticsearchEmulator(
  options: ElasticsearchEmulatorOptions = {},
): Promise<ElasticsearchEmulator> {
  const host = options.host ?? '127.0.0.1';
  const refreshMs = options.refreshIntervalMs ?? 1000;
  const maxContentLength = options.maxContentLength ?? DEFAULT_MAX_CONTENT_LENGTH;
  const version = options.version ?? '9.1.0';
  const productHeader = options.productHeader ?? true;
  const clusterUuid = randomBytes(16).toString('base64url').slice(0, 22);
  const indices = new Map<string, EsIndex>();
  const faults = new FaultInjector();
  const requestLog: RequestLogEntry[] = [];
  const closing = new AbortController();
  let itemFaults: { probability: number; state: number } | undefined;

  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  server.requestTimeout = 0;

  // --- plumbing ------------------------------------------------------------------------------

  function send(ctx: Ctx, status: number, body?: unknown, headers: Record<string, string> = {}) {
    const { req, res } = ctx;
    if (ctx.dropAnswer || req.socket.destroyed) {
      ctx.dropAnswer = true;
      req.socket.destroy();
      return;
    }
    const filterPath = ctx.query.get('filter_path');
    const shown =
      filterPath && typeof body === 'object' && body !== null && status < 300
        ? (applyFilterPath(body, filterPath) ?? {})
        : body;
    const payload =
      shown === undefined
        ? undefined
        : Buffer.from(typeof shown === 'string' ? shown : stringifyJson(shown));
    const all: Record<string, string | number> = { ...headers };
    if (productHeader) all['X-elastic-product'] = 'Elasticsearch';
    if (payload) {
      all['Content-Type'] = ctx.contentType;
      all['Content-Length'] = payload.length;
    } else all['Content-Length'] = 0;
    res.writeHead(status, all);
    if (ctx.truncateAfter !== undefined && payload && ctx.truncateAfter < payload.length) {
      res.flushHeaders();
      if (ctx.truncateAfter > 0) res.write(payload.subarray(0, ctx.truncateAfter));
      const socket = res.socket;
      socket?.once('finish', () => socket.destroy());
      socket?.end();
      return;
    }
    // HEAD answers carry the headers of the GET but no body.
    res.end(req.method === 'HEAD' ? undefined : payload);
  }

  function sendError(ctx: Ctx, err: EsApiError) {
    send(ctx, err.status, err.toJSON(), err.headers);
  }

  async function drain(req: IncomingMessage): Promise<void> {
    if (req.complete) return;
    try {
      for await (const _ of req) {
        // discard
      }
    } catch {
      throw new ClientGone();
    }
  }

  async function readBody(ctx: Ctx): Promise<Buffer> {
    const declared = Number(ctx.req.headers['content-length'] ?? Number.NaN);
    if (declared > maxContentLength) {
      await drain(ctx.req);
      throw esErrors.contentTooLong(maxContentLength);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of ctx.req) {
        size += (chunk as Buffer).length;
        if (size <= maxContentLength) chunks.push(chunk as Buffer);
      }
    } catch {
      throw new ClientGone();
    }
    if (size > maxContentLength) throw esErrors.contentTooLong(maxContentLength);
    return Buffer.concat(chunks);
  }

  async function readJson(ctx: Ctx): Promise<Record<string, unknown>> {
    const text = (await readBody(ctx)).toString('utf8').trim();
    if (!text) return {};
    let value: unknown;
    try {
      value = parseJson(text);
    } catch (err) {
      throw esErrors.xContentParse(`[1:1] Unexpected character: ${(err as Error).message}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw esErrors.parsing('request body or source parameter is required');
    }
    return value as Record<string, unknown>;
  }

  /** Content-Type and Accept: JSON or NDJSON, compatible-with 8 or 9 when given. */
  function checkMediaTypes(ctx: Ctx): EsApiError | 'unsupported' | undefined {
    const accept = String(ctx.req.headers.accept ?? '');
    const type = String(ctx.req.headers['content-type'] ?? '');
    for (const header of [accept, type]) {
      const compat = /compatible-with=(\d+)/.exec(header);
      if (compat && compat[1] !== '9' && compat[1] !== '8') {
        return esErrors.mediaType(
          `Accept version must be either version 9 or 8, but found ${compat[1]}. Accept=${accept}`,
        );
      }
    }
    if (/vnd\.elasticsearch\+json/.test(accept)) ctx.contentType = COMPAT_TYPE;
    if (
      type &&
      !/^application\/(json|x-ndjson|vnd\.elasticsearch\+(json|x-ndjson))\b/i.test(type.trim())
    ) {
      return 'unsupported';
    }
    return undefined;
  }

  function checkAuth(req: IncomingMessage): boolean {
    const auth = options.auth;
    if (!auth) return true;
    const header = String(req.headers.authorization ?? '');
    if ('apiKey' in auth) return header === `ApiKey ${auth.apiKey}`;
    return (
      header === `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`
    );
  }

  // --- requests ------------------------------------------------------------------------------

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const url = new URL(target, 'http://emulator');
    const ctx: Ctx = { req, res, query: url.searchParams, contentType: JSON_TYPE };
    const control = url.pathname === '/_emulator' || url.pathname.startsWith('/_emulator/');
    if (!control) {
      let logged = false;
      const log = () => {
        if (logged) return;
        logged = true;
        const status = ctx.dropAnswer || !res.headersSent ? 0 : res.statusCode;
        requestLog.push({
          method: req.method ?? 'GET',
          path: target,
          status,
          ...(ctx.rejectedItems ? { rejectedItems: ctx.rejectedItems } : {}),
        });
        if (requestLog.length > REQUEST_LOG_LIMIT) {
          requestLog.splice(0, requestLog.length - REQUEST_LOG_LIMIT);
        }
      };
      res.once('finish', log);
      res.once('close', log);
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
      if (!checkAuth(req)) {
        await drain(req);
        return sendError(
          ctx,
          new EsApiError(
            401,
            'security_exception',
            `missing authentication credentials for REST request [${url.pathname}]`,
            {
              extra: { header: { 'WWW-Authenticate': ['Basic realm="security"', 'ApiKey'] } },
              headers: { 'WWW-Authenticate': 'Basic realm="security" charset="UTF-8", ApiKey' },
            },
          ),
        );
      }
      const fault = faults.pick({
        method: req.method ?? 'GET',
        path: target,
        uploadType: undefined,
      });
      if (fault) {
        if ('delayMs' in fault) {
          await sleep(fault.delayMs, undefined, { signal: closing.signal });
        } else if ('status' in fault) {
          await drain(req);
          return sendError(ctx, injected(fault.status));
        } else if ('reset' in fault) {
          if (fault.resetAfterCommit) ctx.dropAnswer = true;
          else {
            if (fault.afterBody) await drain(req);
            ctx.dropAnswer = true;
            req.socket.destroy();
            return;
          }
        } else {
          ctx.truncateAfter = fault.truncateBodyAfter;
        }
      }
      await route(ctx, url.pathname);
    } catch (err) {
      if (err instanceof ClientGone || req.socket.destroyed || closing.signal.aborted) return;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof ShardError) return sendError(ctx, esErrors.searchPhase(err));
      if (err instanceof EsApiError) return sendError(ctx, err);
      sendError(ctx, esErrors.internal(String(err)));
    }
  }

  function injected(status: FaultStatus): EsApiError {
    switch (status) {
      case 429:
        return esErrors.rejected();
      case 503:
        return esErrors.unavailable();
      case 408:
        return esErrors.timeout();
      default:
        return esErrors.internal('injected fault');
    }
  }

  async function route(ctx: Ctx, pathname: string): Promise<void> {
    const method = ctx.req.method ?? 'GET';
    let segs: string[];
    try {
      segs = pathname
        .split('/')
        .slice(1)
        .filter((s, i, all) => s !== '' || i < all.length - 1)
        .map(decodeURIComponent);
    } catch {
      throw esErrors.illegalArgument(`invalid path: ${pathname}`);
    }
    if (segs.length === 1 && segs[0] === '') segs = [];
    const allow = (...methods: string[]) => {
      if (!methods.includes(method)) throw esErrors.methodNotAllowed(method, pathname, methods);
    };

    if (segs.length === 0) {
      allow('GET', 'HEAD');
      await drain(ctx.req);
      return send(ctx, 200, info());
    }
    const [first, second, third] = segs;
    // Cluster-level APIs.
    if (first!.startsWith('_') && first !== '_all') {
      switch (first) {
        case '_bulk':
          allow('POST', 'PUT');
          return bulk(ctx, undefined);
        case '_search':
          allow('GET', 'POST');
          return search(ctx, '_all');
        case '_count':
          allow('GET', 'POST');
          return count(ctx, '_all');
        case '_refresh':
          allow('GET', 'POST');
          return refreshApi(ctx, '_all');
        case '_mapping':
          allow('GET');
          await drain(ctx.req);
          return getMapping(ctx, '_all');
        case '_cluster':
          if (second === 'health') {
            allow('GET');
            await drain(ctx.req);
            return send(ctx, 200, {
              cluster_name: 'tasklog-emulator',
              status: 'green',
              timed_out: false,
              number_of_nodes: 1,
              number_of_data_nodes: 1,
              active_primary_shards: indices.size,
              active_shards: indices.size,
            });
          }
          break;
      }
      await drain(ctx.req);
      throw esErrors.noHandler(method, pathname);
    }

    const expr = first!;
    if (segs.length === 1) {
      switch (method) {
        case 'PUT':
        case 'POST':
          if (method === 'POST') throw esErrors.noHandler(method, pathname);
          return createIndexApi(ctx, expr);
        case 'HEAD': {
          await drain(ctx.req);
          const found = resolveIndices(expr, { ignoreUnavailable: true }).length > 0;
          return send(ctx, found ? 200 : 404);
        }
        case 'GET': {
          await drain(ctx.req);
          const out: Record<string, unknown> = {};
          for (const index of resolveIndices(expr)) {
            out[index.name] = {
              aliases: {},
              mappings: index.mapping.toJSON(),
              settings: nestSettings(index.settings),
            };
          }
          return send(ctx, 200, out);
        }
        case 'DELETE': {
          await drain(ctx.req);
          for (const index of resolveIndices(expr)) {
            index.close();
            indices.delete(index.name);
          }
          return send(ctx, 200, { acknowledged: true });
        }
        default:
          throw esErrors.methodNotAllowed(method, pathname, ['GET', 'HEAD', 'PUT', 'DELETE']);
      }
    }
    switch (second) {
      case '_bulk':
        allow('POST', 'PUT');
        return bulk(ctx, expr);
      case '_search':
        allow('GET', 'POST');
        return search(ctx, expr);
      case '_count':
        allow('GET', 'POST');
        return count(ctx, expr);
      case '_refresh':
        allow('GET', 'POST');
        return refreshApi(ctx, expr);
      case '_delete_by_query':
        allow('POST');
        return deleteByQuery(ctx, expr);
      case '_mapping':
        if (method === 'GET') {
          await drain(ctx.req);
          return getMapping(ctx, expr);
        }
        allow('PUT', 'POST');
        return putMapping(ctx, expr);
      case '_doc':
      case '_create': {
        if (segs.length > 3) break;
        const id = third;
        if (second === '_create' || ctx.query.get('op_type') === 'create') {
          if (id === undefined) throw esErrors.noHandler(method, pathname);
          allow('PUT', 'POST');
          return indexDoc(ctx, expr, id, 'create');
        }
        if (id === undefined) {
          allow('POST');
          return indexDoc(ctx, expr, undefined, 'index');
        }
        if (method === 'GET' || method === 'HEAD') {
          await drain(ctx.req);
          return getDoc(ctx, expr, id);
        }
        if (method === 'DELETE') {
          await drain(ctx.req);
          return deleteDoc(ctx, expr, id);
        }
        allow('PUT', 'POST');
        return indexDoc(ctx, expr, id, 'index');
      }
    }
    await drain(ctx.req);
    throw esErrors.noHandler(method, pathname);
  }

  function info() {
    return {
      name: 'tasklog-emulator-node',
      cluster_name: 'tasklog-emulator',
      cluster_uuid: clusterUuid,
      version: {
        number: version,
        build_flavor: 'default',
        build_type: 'docker',
        build_hash: '0000000000000000000000000000000000000000',
        build_date: '2025-01-01T00:00:00.000Z',
        build_snapshot: false,
        lucene_version: '10.2.2',
        minimum_wire_compatibility_version: '8.19.0',
        minimum_index_compatibility_version: '8.0.0',
      },
      tagline: 'You Know, for Search',
    };
  }

  // --- indices -------------------------------------------------------------------------------

  function validateIndexName(name: string): void {
    if (name !== name.toLowerCase()) throw esErrors.invalidIndexName(name, 'must be lowercase');
    if (INDEX_FORBIDDEN.test(name)) {
      throw esErrors.invalidIndexName(
        name,
        "must not contain the following characters ['\\', '/', '*', '?', '\"', '<', '>', '|', ' ', ',', '#', ':']",
      );
    }
    if (/^[-_+]/.test(name))
      throw esErrors.invalidIndexName(name, "must not start with '_', '-', or '+'");
    if (name === '.' || name === '..')
      throw esErrors.invalidIndexName(name, "must not be '.' or '..'");
    if (Buffer.byteLength(name) > 255)
      throw esErrors.invalidIndexName(name, 'index name is too long');
  }

  function createIndex(name: string, body: { settings?: unknown; mappings?: unknown }): EsIndex {
    validateIndexName(name);
    const existing = indices.get(name);
    if (existing) throw esErrors.alreadyExists(name, existing.uuid);
    const index = new EsIndex(name, body, refreshMs);
    indices.set(name, index);
    return index;
  }

  /** The index a write goes to, created with dynamic mappings if missing (auto_create_index). */
  function writeIndex(name: string): EsIndex {
    return indices.get(name) ?? createIndex(name, {});
  }

  /** `a,b`, `logs-*`, `_all`, `*`. A missing concrete name is a 404 unless ignored. */
  function resolveIndices(expr: string, opts: { ignoreUnavailable?: boolean } = {}): EsIndex[] {
    const out = new Map<string, EsIndex>();
    for (const part of expr.split(',')) {
      if (part === '_all' || part === '*') {
        for (const index of indices.values()) out.set(index.name, index);
      } else if (part.includes('*')) {
        const re = new RegExp(
          `^${part
            .split('*')
            .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
            .join('.*')}$`,
        );
        for (const index of indices.values()) if (re.test(index.name)) out.set(index.name, index);
      } else {
        const index = indices.get(part);
        if (index) out.set(index.name, index);
        else if (!opts.ignoreUnavailable) throw esErrors.indexNotFound(part);
      }
    }
    return [...out.values()];
  }

  async function createIndexApi(ctx: Ctx, name: string): Promise<void> {
    const body = await readJson(ctx);
    const index = createIndex(name, body as { settings?: unknown; mappings?: unknown });
    send(ctx, 200, { acknowledged: true, shards_acknowledged: true, index: index.name });
  }

  function getMapping(ctx: Ctx, expr: string): void {
    const out: Record<string, unknown> = {};
    for (const index of resolveIndices(expr))
      out[index.name] = { mappings: index.mapping.toJSON() };
    send(ctx, 200, out);
  }

  async function putMapping(ctx: Ctx, expr: string): Promise<void> {
    const body = await readJson(ctx);
    const targets = resolveIndices(expr);
    // All or nothing: check every index before changing any.
    for (const index of targets) {
      const probe = new Mapping();
      for (const [path, field] of index.mapping.fields) probe.fields.set(path, { ...field });
      probe.merge(body);
    }
    for (const index of targets) index.mapping.merge(body);
    send(ctx, 200, { acknowledged: true });
  }

  async function refreshApi(ctx: Ctx, expr: string): Promise<void> {
    await drain(ctx.req);
    const targets = resolveIndices(expr, { ignoreUnavailable: expr === '_all' });
    for (const index of targets) index.refresh();
    send(ctx, 200, {
      _shards: { total: targets.length * 2, successful: targets.length, failed: 0 },
    });
  }

  /** Applies `?refresh=` to the indices a write touched. */
  async function honourRefresh(ctx: Ctx, touched: Iterable<EsIndex>): Promise<boolean> {
    const refresh = ctx.query.get('refresh');
    if (refresh === null || refresh === 'false') return false;
    if (refresh === '' || refresh === 'true') {
      for (const index of touched) index.refresh();
      return true;
    }
    if (refresh === 'wait_for') {
      await Promise.all([...touched].map((index) => index.nextRefresh(closing.signal)));
      return true;
    }
    throw esErrors.illegalArgument(`Unknown value for refresh: [${refresh}].`);
  }

  // --- documents -----------------------------------------------------------------------------

  function shardsInfo() {
    return { total: 2, successful: 1, failed: 0 };
  }

  async function indexDoc(
    ctx: Ctx,
    indexName: string,
    id: string | undefined,
    opType: 'index' | 'create',
  ): Promise<void> {
    const source = await readJson(ctx);
    const index = writeIndex(indexName);
    const docId = id ?? randomId();
    const result = index.put(docId, source, opType);
    const forced = await honourRefresh(ctx, [index]);
    send(ctx, result.status, {
      _index: index.name,
      _id: docId,
      _version: result.version,
      result: result.result,
      ...(forced ? { forced_refresh: true } : {}),
      _shards: shardsInfo(),
      _seq_no: result.seqNo,
      _primary_term: 1,
    });
  }

  function getDoc(ctx: Ctx, indexName: string, id: string): void {
    const index = indices.get(indexName);
    if (!index) throw esErrors.indexNotFound(indexName);
    const doc = index.get(id);
    if (!doc) {
      send(ctx, 404, { _index: index.name, _id: id, found: false });
      return;
    }
    send(ctx, 200, {
      _index: index.name,
      _id: id,
      _version: doc.version,
      _seq_no: doc.seqNo,
      _primary_term: 1,
      found: true,
      _source: doc.source,
    });
  }

  async function deleteDoc(ctx: Ctx, indexName: string, id: string): Promise<void> {
    const index = indices.get(indexName);
    if (!index) throw esErrors.indexNotFound(indexName);
    const result = index.delete(id);
    await honourRefresh(ctx, [index]);
    send(ctx, result.status, {
      _index: index.name,
      _id: id,
      _version: result.version,
      result: result.result,
      _shards: shardsInfo(),
      _seq_no: result.seqNo,
      _primary_term: 1,
    });
  }

  function randomId(): string {
    return randomBytes(15).toString('base64url');
  }

  /** mulberry32 over the item-fault state, like the FaultInjector's PRNG. */
  function itemRandom(f: { state: number }): number {
    f.state = (f.state + 0x6d2b79f5) >>> 0;
    let t = f.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  async function bulk(ctx: Ctx, pathIndex: string | undefined): Promise<void> {
    const body = (await readBody(ctx)).toString('utf8');
    if (body.length === 0) {
      throw new EsApiError(
        400,
        'action_request_validation_exception',
        'Validation Failed: 1: no requests added;',
      );
    }
    if (!body.endsWith('\n')) {
      throw esErrors.illegalArgument('The bulk request must be terminated by a newline [\\n]');
    }
    const lines = body.split('\n');
    lines.pop();
    // Parse everything first: a malformed action line fails the whole request, as in ES.
    type Op = {
      action: 'index' | 'create' | 'delete';
      index: string;
      id?: string;
      source?: unknown;
    };
    const ops: Op[] = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.trim() === '') continue;
      let action: Record<string, unknown>;
      try {
        action = JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw esErrors.illegalArgument(
          `Malformed action/metadata line [${i + 1}], expected START_OBJECT`,
        );
      }
      const kinds = Object.keys(action ?? {});
      if (kinds.length !== 1) {
        throw esErrors.illegalArgument(
          `Malformed action/metadata line [${i + 1}], expected a simple value for field [${kinds[1] ?? ''}]`,
        );
      }
      const kind = kinds[0]!;
      if (kind === 'update') {
        throw esErrors.illegalArgument('the emulator does not support bulk [update] actions');
      }
      if (kind !== 'index' && kind !== 'create' && kind !== 'delete') {
        throw esErrors.illegalArgument(
          `Action/metadata line [${i + 1}] contains an unknown parameter [${kind}]`,
        );
      }
      const meta = (action[kind] ?? {}) as { _index?: string; _id?: string };
      const index = meta._index ?? pathIndex;
      if (!index) {
        throw new EsApiError(
          400,
          'action_request_validation_exception',
          'Validation Failed: 1: index is missing;',
        );
      }
      const op: Op = {
        action: kind,
        index,
        ...(meta._id !== undefined ? { id: String(meta._id) } : {}),
      };
      if (kind === 'delete') {
        if (op.id === undefined) {
          throw new EsApiError(
            400,
            'action_request_validation_exception',
            'Validation Failed: 1: id is missing;',
          );
        }
      } else {
        i++;
        if (i >= lines.length)
          throw esErrors.illegalArgument(
            `Validation Failed: 1: source is missing for line [${i}];`,
          );
        op.source = lines[i];
      }
      ops.push(op);
    }

    const touched = new Set<EsIndex>();
    let errors = false;
    let rejected = 0;
    const items = ops.map((op) => {
      const id = op.id ?? randomId();
      const head = { _index: op.index, _id: id };
      const fail = (err: EsApiError) => {
        errors = true;
        return { [op.action]: { ...head, status: err.status, error: err.body() } };
      };
      if (itemFaults && itemRandom(itemFaults) < itemFaults.probability) {
        rejected++;
        return fail(esErrors.rejected());
      }
      try {
        const index = op.action === 'delete' ? indices.get(op.index) : writeIndex(op.index);
        if (!index) throw esErrors.indexNotFound(op.index);
        let result: ReturnType<EsIndex['put']>;
        if (op.action === 'delete') result = index.delete(id);
        else {
          let source: unknown;
          try {
            source = parseJson(op.source as string);
          } catch (err) {
            throw esErrors.documentParsing(`failed to parse: ${(err as Error).message}`);
          }
          if (typeof source !== 'object' || source === null || Array.isArray(source)) {
            throw esErrors.documentParsing('failed to parse, document is empty');
          }
          result = index.put(
            id,
            source as Record<string, unknown>,
            op.action === 'create' ? 'create' : 'index',
          );
        }
        touched.add(index);
        return {
          [op.action]: {
            ...head,
            _version: result.version,
            result: result.result,
            _shards: shardsInfo(),
            _seq_no: result.seqNo,
            _primary_term: 1,
            status: result.status,
          },
        };
      } catch (err) {
        if (err instanceof EsApiError) return fail(err);
        throw err;
      }
    });
    ctx.rejectedItems = rejected;
    await honourRefresh(ctx, touched);
    send(ctx, 200, { errors, took: 1, items });
  }

  // --- search --------------------------------------------------------------------------------

  interface Hit {
    index: EsIndex;
    doc: StoredDoc;
    sort?: (string | number | bigint | boolean | null)[];
  }

  type Matching = {
    /** Sorted by the sort keys when there are some, else in index order. */
    hits: Hit[];
    failures: { index: string; reason: unknown }[];
    keys: SortKey[];
  };
  /**
   * The last few query results, keyed by query, sort and the targets' refresh generations:
   * paging with search_after through one snapshot then costs a binary search per page instead
   * of running and sorting the whole query again (Lucene's index structures do the same job).
   */
  const resultCache = new Map<string, Matching>();
  const RESULT_CACHE_SIZE = 8;

  function matching(targets: EsIndex[], query: unknown, withSort: unknown): Matching {
    const cacheKey = stringifyJson([
      targets.map((t) => [t.name, t.uuid, t.generation]),
      query ?? null,
      withSort ?? null,
    ]);
    const cached = resultCache.get(cacheKey);
    if (cached) {
      resultCache.delete(cacheKey);
      resultCache.set(cacheKey, cached);
      return cached;
    }
    const result = runQuery(targets, query, withSort);
    resultCache.set(cacheKey, result);
    if (resultCache.size > RESULT_CACHE_SIZE) {
      resultCache.delete(resultCache.keys().next().value as string);
    }
    return result;
  }

  /** Runs the query on every target index; a shard-level failure in some indices is reported. */
  function runQuery(targets: EsIndex[], query: unknown, withSort: unknown): Matching {
    const hits: Hit[] = [];
    const failures: { index: string; reason: unknown }[] = [];
    let keys: SortKey[] | undefined;
    let firstError: ShardError | undefined;
    for (const index of targets) {
      let predicate: ReturnType<typeof compileQuery>;
      let indexKeys: SortKey[];
      try {
        predicate = compileQuery(query, index.mapping);
        indexKeys = compileSort(withSort, index.mapping);
      } catch (err) {
        if (!(err instanceof ShardError)) throw err;
        firstError ??= err;
        failures.push({ index: index.name, reason: err.body() });
        continue;
      }
      keys ??= indexKeys;
      for (const doc of index.searchable()) {
        if (!predicate(doc)) continue;
        hits.push({
          index,
          doc,
          ...(indexKeys.length ? { sort: sortValues(doc, indexKeys) } : {}),
        });
      }
    }
    if (firstError && failures.length === targets.length) throw firstError;
    const sortKeys = keys ?? [];
    if (sortKeys.length > 0) {
      hits.sort(
        (a, b) =>
          compareSortValues(a.sort!, b.sort!, sortKeys) ||
          a.index.name.localeCompare(b.index.name) ||
          a.doc.order - b.doc.order,
      );
    }
    return { hits, failures, keys: sortKeys };
  }

  function searchParams(body: Record<string, unknown>, query: URLSearchParams) {
    const num = (name: string, fallback: number) => {
      const v = body[name] ?? query.get(name) ?? undefined;
      if (v === undefined || v === null) return fallback;
      const n = Number(v);
      if (!Number.isInteger(n)) throw esErrors.illegalArgument(`[${name}] must be an integer`);
      return n;
    };
    const qsSort = query.get('sort');
    return {
      size: num('size', 10),
      from: num('from', 0),
      sort: body.sort ?? (qsSort ? qsSort.split(',') : undefined),
    };
  }

  const SEARCH_KEYS = new Set([
    'query',
    'size',
    'from',
    'sort',
    'search_after',
    '_source',
    'aggs',
    'aggregations',
    'track_total_hits',
    'timeout',
    'version',
    'seq_no_primary_term',
  ]);

  async function search(ctx: Ctx, expr: string): Promise<void> {
    const body = await readJson(ctx);
    for (const key of Object.keys(body)) {
      if (!SEARCH_KEYS.has(key))
        throw esErrors.parsing(`Unknown key for a START_OBJECT in [${key}].`);
    }
    const targets = resolveIndices(expr, {
      ignoreUnavailable: ctx.query.get('ignore_unavailable') === 'true',
    });
    const { size, from, sort } = searchParams(body, ctx.query);
    if (size < 0)
      throw esErrors.illegalArgument(`[size] parameter cannot be negative, found [${size}]`);
    if (from < 0)
      throw esErrors.illegalArgument(`[from] parameter cannot be negative, found [${from}]`);
    const window = Math.min(...targets.map((t) => t.maxResultWindow), 10_000);
    if (from + size > window) {
      throw new ShardError(
        400,
        'illegal_argument_exception',
        `Result window is too large, from + size must be less than or equal to: [${window}] but was [${from + size}]. See the scroll api for a more efficient way to request large data sets. This limit can be set by changing the [index.max_result_window] index level setting.`,
      );
    }
    if (body.search_after !== undefined && from > 0) {
      throw esErrors.illegalArgument(
        '`from` parameter must be set to 0 when `search_after` is used.',
      );
    }
    const { hits, failures, keys: sortKeys } = matching(targets, body.query, sort);
    const aggs = new Map<string, ReturnType<typeof compileAggs>>();
    for (const index of targets) {
      aggs.set(index.name, compileAggs(body.aggs ?? body.aggregations, index.mapping));
    }
    let page = hits;
    if (body.search_after !== undefined) {
      const after = parseSearchAfter(body.search_after, sortKeys);
      // hits are sorted: binary search for the first one after `after`.
      let lo = 0;
      let hi = hits.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareSortValues(hits[mid]!.sort!, after, sortKeys) > 0) hi = mid;
        else lo = mid + 1;
      }
      page = hits.slice(lo, lo + from + size);
    }
    page = page.slice(from, from + size);
    const total = hits.length;
    const pickSource = sourceFilter(body._source);
    const tth = body.track_total_hits;
    const totalOut =
      tth === false
        ? undefined
        : tth === true || total <= 10_000
          ? { value: total, relation: 'eq' }
          : { value: 10_000, relation: 'gte' };
    const aggregations: Record<string, unknown> = {};
    const firstAggs = aggs.get(targets[0]?.name ?? '') ?? new Map();
    for (const [name, aggregator] of firstAggs) {
      aggregations[name] = aggregator(hits.map((h) => h.doc));
    }
    await drain(ctx.req);
    send(ctx, 200, {
      took: 1,
      timed_out: false,
      _shards: {
        total: targets.length,
        successful: targets.length - failures.length,
        skipped: 0,
        failed: failures.length,
        ...(failures.length ? { failures: failures.map((f) => ({ shard: 0, ...f })) } : {}),
      },
      hits: {
        ...(totalOut ? { total: totalOut } : {}),
        max_score: sortKeys.length ? null : page.length ? 1 : null,
        hits: page.map((h) => ({
          _index: h.index.name,
          _id: h.doc.id,
          _score: sortKeys.length ? null : 1,
          ...(body.version === true ? { _version: h.doc.version } : {}),
          ...pickSource(h.doc.source),
          ...(h.sort ? { sort: h.sort } : {}),
        })),
      },
      ...(firstAggs.size ? { aggregations } : {}),
    });
  }

  async function count(ctx: Ctx, expr: string): Promise<void> {
    const body = await readJson(ctx);
    const targets = resolveIndices(expr, {
      ignoreUnavailable: ctx.query.get('ignore_unavailable') === 'true',
    });
    const { hits, failures } = matching(targets, body.query, undefined);
    send(ctx, 200, {
      count: hits.length,
      _shards: {
        total: targets.length,
        successful: targets.length - failures.length,
        skipped: 0,
        failed: failures.length,
      },
    });
  }

  async function deleteByQuery(ctx: Ctx, expr: string): Promise<void> {
    const body = await readJson(ctx);
    if (body.query === undefined) {
      throw new EsApiError(
        400,
        'action_request_validation_exception',
        'Validation Failed: 1: query is missing;',
      );
    }
    const targets = resolveIndices(expr);
    const proceed = ctx.query.get('conflicts') === 'proceed';
    const { hits } = matching(targets, body.query, undefined);
    let deleted = 0;
    let conflicts = 0;
    const failures: unknown[] = [];
    // Like the real API it deletes what a search saw; a document changed since then conflicts.
    for (const hit of hits) {
      const live = hit.index.liveVersion(hit.doc.id);
      if (live === undefined) continue;
      if (live !== hit.doc.version) {
        conflicts++;
        if (!proceed) {
          failures.push({
            index: hit.index.name,
            id: hit.doc.id,
            cause: esErrors.versionConflict(hit.index.name, hit.doc.id, live).body(),
            status: 409,
          });
          break;
        }
        continue;
      }
      hit.index.delete(hit.doc.id);
      deleted++;
    }
    const refresh = ctx.query.get('refresh');
    if (refresh === '' || refresh === 'true') for (const index of targets) index.refresh();
    send(ctx, failures.length ? 409 : 200, {
      took: 1,
      timed_out: false,
      total: hits.length,
      deleted,
      batches: 1,
      version_conflicts: conflicts,
      noops: 0,
      retries: { bulk: 0, search: 0 },
      throttled_millis: 0,
      requests_per_second: -1,
      throttled_until_millis: 0,
      failures,
    });
  }

  // --- control -------------------------------------------------------------------------------

  /**
   * Test control over HTTP, for the CLI:
   *   POST   /_emulator/faults/random   RandomFaultOptions (+ match.pathRegExp) → { id }
   *   DELETE /_emulator/faults          all rules
   *   POST   /_emulator/bulk-item-faults { probability, seed } ({} turns them off)
   *   GET    /_emulator/requests         the request log
   */
  async function handleControl(ctx: Ctx, pathname: string): Promise<void> {
    const route = `${ctx.req.method} ${pathname}`;
    switch (route) {
      case 'POST /_emulator/faults/random': {
        const body = await readJson(ctx);
        const m = body.match as Record<string, unknown> | undefined;
        const match: FaultMatch | undefined = m
          ? {
              ...(typeof m.method === 'string' ? { method: m.method } : {}),
              ...(typeof m.path === 'string' ? { path: m.path } : {}),
              ...(typeof m.pathRegExp === 'string' ? { path: new RegExp(m.pathRegExp) } : {}),
            }
          : undefined;
        const handle = faults.failRandomly({
          ...(body as unknown as RandomFaultOptions),
          ...(match ? { match } : {}),
        });
        return send(ctx, 200, { id: handle.id });
      }
      case 'DELETE /_emulator/faults':
        await drain(ctx.req);
        faults.clear();
        return send(ctx, 200, {});
      case 'POST /_emulator/bulk-item-faults': {
        const body = await readJson(ctx);
        emulator.failBulkItems(
          typeof body.probability === 'number'
            ? {
                probability: body.probability,
                ...(typeof body.seed === 'number' ? { seed: body.seed } : {}),
              }
            : undefined,
        );
        return send(ctx, 200, {});
      }
      case 'GET /_emulator/requests':
        await drain(ctx.req);
        return send(ctx, 200, requestLog);
      default:
        await drain(ctx.req);
        throw esErrors.noHandler(ctx.req.method ?? 'GET', pathname);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  const emulator: ElasticsearchEmulator = {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    faults,
    requestLog,
    failBulkItems(opts) {
      if (opts && !(opts.probability >= 0 && opts.probability <= 1)) {
        throw new RangeError('probability must be within 0..1');
      }
      itemFaults = opts
        ? { probability: opts.probability, state: (opts.seed ?? 0x2545f491) >>> 0 }
        : undefined;
    },
    createIndex(name, body = {}) {
      if (!indices.has(name)) createIndex(name, body);
    },
    refresh(name) {
      for (const index of name ? resolveIndices(name) : indices.values()) index.refresh();
    },
    documents(name) {
      return (indices.get(name)?.liveDocs() ?? []).map((d) => ({ id: d.id, source: d.source }));
    },
    async close() {
      closing.abort();
      for (const index of indices.values()) index.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
  return emulator;
}

/** `_source`: true/false, a field list, a pattern, or `{ includes, excludes }`. */
function sourceFilter(spec: unknown): (source: Record<string, unknown>) => { _source?: unknown } {
  if (spec === undefined || spec === true) return (source) => ({ _source: source });
  if (spec === false) return () => ({});
  let includes: string[] = [];
  let excludes: string[] = [];
  if (typeof spec === 'string') includes = [spec];
  else if (Array.isArray(spec)) includes = spec.map(String);
  else if (typeof spec === 'object' && spec !== null) {
    const s = spec as { includes?: unknown; excludes?: unknown };
    includes = ([] as unknown[]).concat(s.includes ?? []).map(String);
    excludes = ([] as unknown[]).concat(s.excludes ?? []).map(String);
  }
  const compile = (patterns: string[]) =>
    patterns.map(
      (p) =>
        new RegExp(
          `^${p
            .split('*')
            .map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
            .join('.*')}$`,
        ),
    );
  const inc = compile(includes);
  const exc = compile(excludes);
  return (source) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(source)) {
      if (inc.length && !inc.some((re) => re.test(k))) continue;
      if (exc.length && exc.some((re) => re.test(k))) continue;
      out[k] = v;
    }
    return { _source: out };
  };
}

/**
 * `?filter_path=errors,items.*.status`: only the named parts of the answer (`*` matches one
 * key; arrays are transparent), as Elasticsearch trims responses.
 */
function applyFilterPath(value: unknown, spec: string): unknown {
  const walk = (v: unknown, paths: string[][]): unknown => {
    if (paths.some((p) => p.length === 0)) return v;
    if (Array.isArray(v)) {
      const out = v.map((e) => walk(e, paths)).filter((e) => e !== undefined);
      return out.length ? out : undefined;
    }
    if (typeof v !== 'object' || v === null) return undefined;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const rest = paths.filter((p) => p[0] === '*' || p[0] === k).map((p) => p.slice(1));
      if (rest.length === 0) continue;
      const kept = walk(x, rest);
      if (kept !== undefined) out[k] = kept;
    }
    return Object.keys(out).length ? out : undefined;
  };
  return walk(
    value,
    spec.split(',').map((p) => p.trim().split('.')),
  );
}

function nestSettings(flat: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split('.');
    let level = out;
    for (const part of parts.slice(0, -1)) {
      level[part] ??= {};
      level = level[part] as Record<string, unknown>;
    }
    level[parts.at(-1)!] = String(value);
  }
  return out;
}
