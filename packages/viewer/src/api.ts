/**
 * The proxy's HTTP API as the page uses it: same origin, a bearer token from sessionStorage on
 * every call, the JSON error shape `{"error":{"code","message"}}` turned into `ApiError`.
 */

const TOKEN_KEY = 'tasklog.token';

/** A failed API call: `status` and the server's error code, with its message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ApiError';
  }
}

/** The bearer token kept for this tab, if the reader gave one. */
export function token(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function setToken(value: string | undefined): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Headers of every API call: the token, when there is one, plus `extra`. */
export function authHeaders(extra: Record<string, string> = {}): Headers {
  const headers = new Headers(extra);
  const t = token();
  if (t) headers.set('Authorization', `Bearer ${t}`);
  return headers;
}

/** Turns a non-2xx answer into an ApiError, reading the JSON error body when there is one. */
export async function errorOf(res: Response): Promise<ApiError> {
  let code = `HTTP_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.code) code = body.error.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    // Not JSON (a HEAD answer, or a proxy's HTML page): the status says enough.
  }
  return new ApiError(res.status, code, message);
}

/** `fetch` with the token; throws ApiError for any answer outside 2xx (and 416 is the caller's). */
export async function apiFetch(
  path: string,
  init: RequestInit & { accept?: number[] } = {},
): Promise<Response> {
  const headers = authHeaders();
  new Headers(init.headers).forEach((v, k) => {
    headers.set(k, v);
  });
  let res: Response;
  try {
    res = await fetch(path, { ...init, headers });
  } catch (err) {
    if (init.signal?.aborted) throw err;
    throw new ApiError(0, 'NETWORK', 'the server cannot be reached', { cause: err });
  }
  if (!res.ok && !init.accept?.includes(res.status)) throw await errorOf(res);
  return res;
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await apiFetch(path, { signal, headers: { Accept: 'application/json' } });
  return (await res.json()) as T;
}

/** A query string from the defined values of `params` (with its `?`), or ''. */
export function query(params: Record<string, string | number | boolean | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export interface AttemptRef {
  dagId: string;
  runId: string;
  taskId: string;
  mapIndex: number;
  tryNumber: number;
}

/** `/api/v1/dags/{dag}/runs/{run}/tasks/{task}/attempts/{try}/log` (+ `suffix`), no query. */
export function logPath(a: AttemptRef, suffix = ''): string {
  const e = encodeURIComponent;
  return `/api/v1/dags/${e(a.dagId)}/runs/${e(a.runId)}/tasks/${e(a.taskId)}/attempts/${a.tryNumber}/log${suffix}`;
}

/** The `mapIndex` query part of an attempt's API calls ('' for an unmapped task). */
export function mapQuery(a: AttemptRef, more: Record<string, string | number | boolean> = {}) {
  return query({ mapIndex: a.mapIndex >= 0 ? a.mapIndex : undefined, ...more });
}

// The shapes of the browse endpoints (issue 13's contract).
export interface DagRow {
  dagId: string;
  attempts: number;
  running: number;
  lastUpdatedAt: string;
}
export interface RunRow {
  runId: string;
  attempts: number;
  running: number;
  lastUpdatedAt: string;
}
export interface TaskRow {
  taskId: string;
  mapIndex: number;
  attempts: number;
  latestTry: number;
  state: string;
  size: number | null;
  lastUpdatedAt: string;
}
export interface AttemptRow {
  dagId: string;
  runId: string;
  taskId: string;
  mapIndex: number;
  tryNumber: number;
  state: string;
  size: number | null;
  createdAt: string;
  updatedAt: string;
  shippedAt: string | null;
  airflowState: string | null;
  exitCode: number | null;
}

export interface SearchMatch {
  offset: number;
  lineOffset: number;
  length: number;
  line: string;
}
export interface SearchAnswer {
  matches: SearchMatch[];
  scannedFrom: number;
  scannedTo: number;
  size: number;
  done: boolean;
  stopped: null | 'limit' | 'time';
}
