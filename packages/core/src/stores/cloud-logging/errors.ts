import { AbortedError, BackendUnavailableError, TasklogError } from '../../errors.js';
import { networkErrorCode } from '../shared/network-errors.js';

// How Cloud Logging's failures become tasklog's errors, for the store and its writer. The SDK
// speaks gRPC status codes; its REST transport reports HTTP statuses or socket codes instead.

/**
 * The generated client takes no AbortSignal (its promise has no cancel once wrapped), so an
 * abort stops waiting at once; the call itself ends by its deadline.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  promise.catch(() => undefined);
  if (signal.aborted) return Promise.reject(new AbortedError('aborted', { cause: signal.reason }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError('aborted', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** gRPC status codes. */
export const G = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const RETRYABLE_CODES = new Set<number>([
  G.DEADLINE_EXCEEDED,
  G.RESOURCE_EXHAUSTED,
  G.ABORTED,
  G.INTERNAL,
  G.UNAVAILABLE,
]);
const HTTP_TO_GRPC: Record<number, number> = {
  400: G.INVALID_ARGUMENT,
  401: G.UNAUTHENTICATED,
  403: G.PERMISSION_DENIED,
  404: G.NOT_FOUND,
  409: G.ABORTED,
  429: G.RESOURCE_EXHAUSTED,
  500: G.INTERNAL,
  502: G.UNAVAILABLE,
  503: G.UNAVAILABLE,
  504: G.DEADLINE_EXCEEDED,
};

/** The gRPC code of an SDK error (REST errors carry HTTP statuses or socket codes). */
function grpcCode(err: unknown): number | string | undefined {
  const e = (err ?? {}) as { code?: unknown; status?: unknown; response?: { status?: unknown } };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.code === 'string') return e.code;
  const status = typeof e.status === 'number' ? e.status : e.response?.status;
  if (typeof status === 'number')
    return HTTP_TO_GRPC[status] ?? (status >= 500 ? G.UNAVAILABLE : undefined);
  return undefined;
}

export function isRetryable(err: unknown): boolean {
  if (err instanceof TasklogError) return false;
  // The REST transport reports a failed connection with Node's socket codes, as every SDK does.
  if (networkErrorCode(err) !== undefined) return true;
  const code = grpcCode(err);
  return typeof code === 'number' && RETRYABLE_CODES.has(code);
}

/** Every SDK failure becomes one of tasklog's errors here, with the SDK's error as `cause`. */
export function cloudLoggingError(err: unknown, where: string, action: string): TasklogError {
  if (err instanceof TasklogError) return err;
  const cause = { cause: err };
  const code = grpcCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === G.CANCELLED || (err as { name?: string })?.name === 'AbortError') {
    return new AbortedError(`${action} ${where} was aborted`, cause);
  }
  if (
    /default credentials|could not load the default credentials|no authentication/i.test(message)
  ) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: no Google credentials (Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud auth application-default login, or the metadata server)`,
      cause,
    );
  }
  if (/project id/i.test(message) && code === undefined) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: no Google Cloud project; set cloud_logging.project_id or GOOGLE_CLOUD_PROJECT`,
      cause,
    );
  }
  if (code === G.PERMISSION_DENIED || code === G.UNAUTHENTICATED) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: access denied (${message}); the credentials need roles/logging.logWriter and roles/logging.viewer`,
      cause,
    );
  }
  if (code === G.INVALID_ARGUMENT || code === G.FAILED_PRECONDITION || code === G.NOT_FOUND) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: Cloud Logging rejected the request (${message})`,
      cause,
    );
  }
  if (typeof code === 'number' && RETRYABLE_CODES.has(code)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: Cloud Logging is unavailable or throttling even after retries (${message})`,
      cause,
    );
  }
  return new BackendUnavailableError(`cannot ${action} ${where}: ${message}`, cause);
}
