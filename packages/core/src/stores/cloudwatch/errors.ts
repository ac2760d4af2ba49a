import {
  AbortedError,
  BackendUnavailableError,
  NotFoundError,
  TasklogError,
} from '../../errors.js';

// The one mapping of CloudWatch Logs SDK errors onto tasklog's, and which of them are worth
// another try.

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

export function errorName(err: unknown): string | undefined {
  return (err as SdkErrorShape | undefined)?.name;
}

export function isNotFound(err: unknown): boolean {
  return errorName(err) === 'ResourceNotFoundException';
}

const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'LimitExceededException',
]);
const SERVICE_FAULTS = new Set([
  'ServiceUnavailableException',
  'InternalFailure',
  'InternalServerError',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
]);
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
]);
const CREDENTIAL_ERRORS = new Set([
  'AccessDeniedException',
  'AccessDenied',
  'UnrecognizedClientException',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'MissingAuthenticationTokenException',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidClientTokenId',
  'CredentialsProviderError',
]);

export function isThrottling(err: unknown): boolean {
  return THROTTLING.has(errorName(err) ?? '');
}

/** Worth another try: throttling, 5xx, timeouts, dropped connections, rejected events. */
export function isTransient(err: unknown): boolean {
  if (err instanceof RejectedEventsError) return true;
  if (err instanceof TasklogError) return false;
  const e = (err ?? {}) as SdkErrorShape;
  if (e.name === 'AbortError') return false;
  if (THROTTLING.has(e.name ?? '') || SERVICE_FAULTS.has(e.name ?? '')) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) return true;
  return (
    status === undefined && /socket hang up|ECONNRESET|EPIPE|timed? ?out/i.test(e.message ?? '')
  );
}

/**
 * The one place CloudWatch Logs SDK errors become tasklog errors. Every message names the group
 * and the stream (or prefix); every error keeps the SDK's as `cause`. A missing stream or group
 * is NotFoundError: groups are created on the first write, so a missing group only means that
 * nothing was ever stored there.
 */
export function cloudwatchError(
  err: unknown,
  group: string,
  stream: string | undefined,
  action: string,
): TasklogError {
  if (err instanceof TasklogError) return err;
  const e = (err ?? {}) as SdkErrorShape;
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const where =
    stream === undefined ? `log group ${group}` : `log stream ${stream} in log group ${group}`;
  const detail = `${name}${status ? ` (HTTP ${status})` : ''}${e.message && e.message !== name ? `: ${e.message}` : ''}`;
  const cause = { cause: err };
  if (name === 'AbortError' || e.code === 'ABORT_ERR') {
    return new AbortedError(`${action} ${where} was aborted`, cause);
  }
  if (name === 'ResourceNotFoundException') {
    return new NotFoundError(`no ${where} (${e.message ?? 'not found'})`, cause);
  }
  if (CREDENTIAL_ERRORS.has(name) || status === 401 || status === 403) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: access denied (${detail}); check the credentials in the AWS default chain (AWS_* environment, profile, instance or task role) and the logs:* permissions`,
      cause,
    );
  }
  if (/region is missing/i.test(e.message ?? '')) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: no AWS region; put it in the log group ARN or set cloudwatch.region`,
      cause,
    );
  }
  if (err instanceof RejectedEventsError) {
    return new BackendUnavailableError(`cannot ${action} ${where}: ${err.message}`, cause);
  }
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: CloudWatch Logs endpoint not reachable (${e.code})`,
      cause,
    );
  }
  if (isTransient(err)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: CloudWatch Logs is throttling or failing even after retries (${detail})`,
      cause,
    );
  }
  return new BackendUnavailableError(`cannot ${action} ${where}: ${detail}`, cause);
}

/** A batch CloudWatch accepted only in part; the rejected events are to be sent again. */
export class RejectedEventsError extends Error {
  constructor(readonly count: number) {
    super(
      `CloudWatch rejected ${count} event(s) as more than 14 days old or 2 hours ahead; check the clock`,
    );
    this.name = 'RejectedEventsError';
  }
}
