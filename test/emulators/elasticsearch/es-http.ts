/**
 * The Elasticsearch emulator's side of the HTTP plumbing: answers with the product header and
 * the negotiated media type, `filter_path`, JSON bodies with exact big integers, media-type and
 * credential checks. The rest is shared (../shared/).
 */
import type { IncomingMessage } from 'node:http';
import type { FaultStatus } from '../shared/fault-injector.js';
import {
  BodyTooLargeError,
  drain,
  type HttpExchange,
  readBody,
  writeAnswer,
} from '../shared/http-exchange.js';
import { EsApiError, esErrors } from './es-errors.js';
import { parseJson, stringifyJson } from './es-json.js';

export interface Ctx extends HttpExchange {
  query: URLSearchParams;
  /** The answer's Content-Type (compatible-with=9 when the client asked for it). */
  contentType: string;
  /** Send `X-Elastic-Product: Elasticsearch` (false imitates a foreign server). */
  productHeader: boolean;
  /** `http.max_content_length`. */
  maxContentLength: number;
  /** For `_bulk`: items rejected with 429 inside a 200 answer, for the request log. */
  rejectedItems?: number;
}

export const JSON_TYPE = 'application/json';
const COMPAT_TYPE = 'application/vnd.elasticsearch+json;compatible-with=9';

export function send(
  ctx: Ctx,
  status: number,
  body?: unknown,
  headers: Record<string, string> = {},
): void {
  const filterPath = ctx.query.get('filter_path');
  const shown =
    filterPath && typeof body === 'object' && body !== null && status < 300
      ? (applyFilterPath(body, filterPath) ?? {})
      : body;
  const all: Record<string, string> = { ...headers };
  if (ctx.productHeader) all['X-elastic-product'] = 'Elasticsearch';
  if (shown === undefined) {
    writeAnswer(ctx, status, all);
    return;
  }
  all['Content-Type'] = ctx.contentType;
  writeAnswer(ctx, status, all, typeof shown === 'string' ? shown : stringifyJson(shown));
}

export function sendError(ctx: Ctx, err: EsApiError): void {
  send(ctx, err.status, err.toJSON(), err.headers);
}

/** The error an injected fault status stands for. */
export function injectedError(status: FaultStatus): EsApiError {
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

export async function readEsBody(ctx: Ctx): Promise<Buffer> {
  const declared = Number(ctx.req.headers['content-length'] ?? Number.NaN);
  if (declared > ctx.maxContentLength) {
    await drain(ctx.req);
    throw esErrors.contentTooLong(ctx.maxContentLength);
  }
  try {
    return await readBody(ctx.req, ctx.maxContentLength);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw esErrors.contentTooLong(ctx.maxContentLength);
    throw err;
  }
}

export async function readEsJson(ctx: Ctx): Promise<Record<string, unknown>> {
  const text = (await readEsBody(ctx)).toString('utf8').trim();
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
export function checkMediaTypes(ctx: Ctx): EsApiError | 'unsupported' | undefined {
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

export type EsAuth = { username: string; password: string } | { apiKey: string };

export function checkAuth(req: IncomingMessage, auth: EsAuth | undefined): boolean {
  if (!auth) return true;
  const header = String(req.headers.authorization ?? '');
  if ('apiKey' in auth) return header === `ApiKey ${auth.apiKey}`;
  return header === `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
}

export function authRequired(pathname: string): EsApiError {
  return new EsApiError(
    401,
    'security_exception',
    `missing authentication credentials for REST request [${pathname}]`,
    {
      extra: { header: { 'WWW-Authenticate': ['Basic realm="security"', 'ApiKey'] } },
      headers: { 'WWW-Authenticate': 'Basic realm="security" charset="UTF-8", ApiKey' },
    },
  );
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
