import {
  AbortedError,
  BackendUnavailableError,
  InvalidInputError,
  NotFoundError,
  TasklogError,
} from '../../errors.js';

/**
 * The Elasticsearch client's errors as tasklog's: which are worth another try, and the one
 * mapping onto coded errors (each message names the index and the log, each keeps the client's
 * error as `cause`).
 */

/** HTTP statuses worth another try: timeout, throttling, server trouble. */
export const TRANSIENT_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const TRANSIENT_ERRORS = new Set([
  'ConnectionError',
  'TimeoutError',
  'NoLivingConnectionsError',
  'DeserializationError',
]);

interface EsErrorShape {
  name?: string;
  message?: string;
  meta?: { statusCode?: number; body?: unknown };
}

function statusOf(err: unknown): number | undefined {
  return (err as EsErrorShape | undefined)?.meta?.statusCode;
}

/** `error.type` of an Elasticsearch error answer. */
export function errorType(err: unknown): string | undefined {
  const body = (err as EsErrorShape | undefined)?.meta?.body as
    | { error?: { type?: string } | string }
    | undefined;
  return typeof body?.error === 'object' ? body.error.type : undefined;
}

function errorReason(err: unknown): string | undefined {
  const body = (err as EsErrorShape | undefined)?.meta?.body as
    | { error?: { reason?: string; root_cause?: { reason?: string }[] } | string }
    | undefined;
  if (typeof body?.error === 'string') return body.error;
  return body?.error?.root_cause?.[0]?.reason ?? body?.error?.reason;
}

export function isIndexMissing(err: unknown): boolean {
  return statusOf(err) === 404 && errorType(err) === 'index_not_found_exception';
}

export function isTransient(err: unknown): boolean {
  if (err instanceof TasklogError) return false;
  const e = err as EsErrorShape | undefined;
  if (e?.name === 'ResponseError') return TRANSIENT_STATUS.has(statusOf(err) ?? 0);
  return TRANSIENT_ERRORS.has(e?.name ?? '');
}

/**
 * The one place client errors become tasklog errors; each message names the index and the log,
 * each error keeps the client's as `cause`.
 */
export function esError(
  err: unknown,
  index: string,
  logId: string | undefined,
  action: string,
): TasklogError {
  if (err instanceof TasklogError) return err;
  const e = (err ?? {}) as EsErrorShape;
  const name = e.name ?? 'Error';
  const status = statusOf(err);
  const type = errorType(err);
  const where = logId === undefined ? `index ${index}` : `log ${logId} in index ${index}`;
  const detail = `${type ?? name}${status ? ` (HTTP ${status})` : ''}${errorReason(err) ? `: ${errorReason(err)}` : e.message ? `: ${e.message}` : ''}`;
  const cause = { cause: err };
  if (name === 'RequestAbortedError' || name === 'AbortError') {
    return new AbortedError(`${action} ${where} was aborted`, cause);
  }
  if (name === 'ProductNotSupportedError') {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: the server is not Elasticsearch (no X-Elastic-Product header); for OpenSearch set elasticsearch.distribution = "opensearch"`,
      cause,
    );
  }
  if (status === 404 && type === 'index_not_found_exception') {
    return new NotFoundError(
      `index ${index} does not exist (while trying to ${action} ${where})`,
      cause,
    );
  }
  if (status === 401 || status === 403) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: access denied (${detail}); check elasticsearch.username/password or api_key`,
      cause,
    );
  }
  if (status === 413) {
    return new InvalidInputError(
      `cannot ${action} ${where}: request larger than the cluster's http.max_content_length; lower elasticsearch.bulk_bytes and elasticsearch.max_line_bytes (a document can be 6x its line)`,
      cause,
    );
  }
  if (status === 400) {
    return new InvalidInputError(
      `cannot ${action} ${where}: Elasticsearch refused it (${detail})`,
      cause,
    );
  }
  if (TRANSIENT_ERRORS.has(name) || (status !== undefined && TRANSIENT_STATUS.has(status))) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: Elasticsearch is unreachable, throttling or failing even after retries (${detail})`,
      cause,
    );
  }
  return new BackendUnavailableError(`cannot ${action} ${where}: ${detail}`, cause);
}
