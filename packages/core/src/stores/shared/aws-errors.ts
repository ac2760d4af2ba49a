import { AbortedError, BackendUnavailableError, TasklogError } from '../../errors.js';
import { networkErrorCode } from './network-errors.js';

// What the AWS backends (S3, CloudWatch Logs) share about AWS SDK v3 errors: which names mean
// bad credentials, throttling or a passing fault, and how those become tasklog's errors. Each
// backend adds only what is its own (a missing key, a missing log group) through `awsError`'s
// `own`. By the time a backend sees an error the SDK's standard retry strategy has already tried
// it `max_attempts` times, so "transient" here says what a message should blame, and what a
// caller with its own retries (a writer's flush) may try again later.

/** The fields tasklog reads from an AWS SDK v3 error (a ServiceException, or Node's error beneath). */
interface AwsErrorShape {
  name?: string;
  code?: string;
  message?: string;
  errors?: { code?: string }[];
  $metadata?: { httpStatusCode?: number };
}

/** An AWS SDK error, read once for the checks and the message. */
export interface AwsErrorFacts {
  /** The error's name (S3's error code, `TimeoutError`, …); `Error` when it has none. */
  name: string;
  /** The HTTP status of the answer, when there was one. */
  status: number | undefined;
  /** Node's code (`ECONNRESET`, `ABORT_ERR`), or the first one of an AggregateError. */
  code: string | undefined;
  message: string | undefined;
  /** `Name (HTTP status): message`, for the end of a message. */
  detail: string;
}

export function awsErrorFacts(err: unknown): AwsErrorFacts {
  const e = (err ?? {}) as AwsErrorShape;
  const name = e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  const detail = `${name}${status ? ` (HTTP ${status})` : ''}${e.message && e.message !== name ? `: ${e.message}` : ''}`;
  return {
    name,
    status,
    code: e.code ?? e.errors?.find((x) => x.code)?.code,
    message: e.message,
    detail,
  };
}

/**
 * Names of a request refused for its credentials or signature: S3's (`AccessDenied`,
 * `InvalidAccessKeyId`, …), the JSON protocol services' (`AccessDeniedException`,
 * `UnrecognizedClientException`, …), STS's for an assumed role, and the SDK's own when its
 * default chain found nothing.
 */
export const AWS_CREDENTIAL_ERRORS: ReadonlySet<string> = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'Forbidden',
  'InvalidAccessKeyId',
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'InvalidSignatureException',
  'IncompleteSignature',
  'MissingAuthenticationToken',
  'MissingAuthenticationTokenException',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidToken',
  'TokenRefreshRequired',
  'CredentialsProviderError',
]);

/** Names of a request refused for its rate (the SDK's `THROTTLING_ERROR_CODES` that AWS logs and S3 use). */
export const AWS_THROTTLING_ERRORS: ReadonlySet<string> = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'LimitExceededException',
]);

/**
 * Names of a passing fault: the service failing or timing out, or a clock skew the SDK corrects
 * on its next try (`RequestTimeTooSkewed`). A 5xx status is one too, whatever its name.
 */
export const AWS_TRANSIENT_ERRORS: ReadonlySet<string> = new Set([
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalError',
  'InternalFailure',
  'InternalServerError',
  'RequestTimeout',
  'RequestTimeoutException',
  'RequestTimeTooSkewed',
  'TimeoutError',
]);

/** The request was cancelled through its AbortSignal. */
export function isAwsAbort(err: unknown): boolean {
  const { name, code } = awsErrorFacts(err);
  return name === 'AbortError' || code === 'ABORT_ERR';
}

export function isAwsThrottling(err: unknown): boolean {
  return AWS_THROTTLING_ERRORS.has(awsErrorFacts(err).name);
}

/** Worth another try later: throttling, a passing fault, a 5xx, a failed connection. */
export function isAwsTransient(err: unknown): boolean {
  if (err instanceof TasklogError || isAwsAbort(err)) return false;
  const { name, status } = awsErrorFacts(err);
  return (
    AWS_THROTTLING_ERRORS.has(name) ||
    AWS_TRANSIENT_ERRORS.has(name) ||
    (status !== undefined && status >= 500) ||
    networkErrorCode(err) !== undefined
  );
}

/** How an AWS backend's messages name its service and where its settings are. */
export interface AwsService {
  /** As messages name it: `S3`, `CloudWatch Logs`. */
  name: string;
  /** Said after "check the credentials in the AWS default chain (…)": `or s3.role_arn`. */
  credentialsHint: string;
  /** Said after "no AWS region;": `set s3.region or AWS_REGION`. */
  regionHint: string;
}

/**
 * The mapping every AWS backend shares: a tasklog error passes as it is, an abort becomes
 * AbortedError, then `own` maps what only this backend knows (its not-found cases), and the rest
 * is BackendUnavailableError saying what to fix: credentials, region, network, timeout,
 * throttling or a fault. Every message says `cannot <action> <where>`; every error keeps `err` as
 * `cause`.
 */
export function awsError(
  err: unknown,
  service: AwsService,
  action: string,
  where: string,
  own?: (facts: AwsErrorFacts, cause: { cause: unknown }) => TasklogError | undefined,
): TasklogError {
  if (err instanceof TasklogError) return err;
  const facts = awsErrorFacts(err);
  const { name, status, detail } = facts;
  const cause = { cause: err };
  if (isAwsAbort(err)) return new AbortedError(`${action} ${where} was aborted`, cause);
  const mapped = own?.(facts, cause);
  if (mapped) return mapped;
  if (AWS_CREDENTIAL_ERRORS.has(name) || status === 401 || status === 403) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: access denied (${detail}); check the credentials in the AWS default chain (AWS_* environment, profile, instance or task role) ${service.credentialsHint}`,
      cause,
    );
  }
  if (/region is missing/i.test(facts.message ?? '')) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: no AWS region; ${service.regionHint}`,
      cause,
    );
  }
  const network = networkErrorCode(err);
  if (network !== undefined) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: ${service.name} endpoint not reachable (${network})`,
      cause,
    );
  }
  if (name === 'TimeoutError') {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: ${service.name} timed out`,
      cause,
    );
  }
  if (isAwsTransient(err)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: ${service.name} is throttling or failing even after retries (${detail})`,
      cause,
    );
  }
  return new BackendUnavailableError(`cannot ${action} ${where}: ${detail}`, cause);
}
