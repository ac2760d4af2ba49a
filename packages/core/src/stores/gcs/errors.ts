import {
  AbortedError,
  BackendUnavailableError,
  InvalidInputError,
  NotFoundError,
  TasklogError,
} from '../../errors.js';

// The one mapping of @google-cloud/storage's errors (and the network's) onto tasklog's.

/** The HTTP status of an SDK error (ApiError `code`, gaxios `status` / `response.status`). */
export function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; status?: unknown; response?: { status?: unknown } } | null;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.status === 'number') return e.status;
  if (typeof e?.response?.status === 'number') return e.response.status;
  return undefined;
}

function isBucketMissing(err: unknown): boolean {
  return (
    statusOf(err) === 404 &&
    /bucket does not exist|no such bucket|bucket.*not found/i.test(
      (err as Error | null)?.message ?? '',
    )
  );
}

/** A 404 about the object, not about its bucket (a missing bucket is a configuration error). */
export function isObjectMissing(err: unknown): boolean {
  return statusOf(err) === 404 && !isBucketMissing(err);
}

/**
 * A create or compose with `ifGenerationMatch: 0` found the object already there (HTTP 412). Not a
 * tasklog error: the caller decides whether that object is its own (a retry whose answer was lost)
 * or someone else's.
 */
export class PreconditionFailed extends Error {
  constructor(
    readonly object: string,
    cause: unknown,
  ) {
    super(`${object} already exists`, { cause });
  }
}

/**
 * The one place SDK and network errors become tasklog errors. Messages name the bucket and the
 * object; the original error is always kept as `cause`.
 */
export function gcsError(
  err: unknown,
  action: string,
  bucket: string,
  object: string | undefined,
  signal: AbortSignal | undefined,
): TasklogError {
  if (err instanceof TasklogError) return err;
  const where = object === undefined ? `bucket ${bucket}` : `gs://${bucket}/${object}`;
  if (signal?.aborted || (err as Error | null)?.name === 'AbortError') {
    return new AbortedError(`${action} ${where} was aborted`, { cause: err });
  }
  const status = statusOf(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (isBucketMissing(err)) {
    return new BackendUnavailableError(
      `cannot ${action} ${where}: bucket ${bucket} does not exist`,
      {
        cause: err,
      },
    );
  }
  switch (status) {
    case 404:
      return new NotFoundError(`cannot ${action} ${where}: not found`, { cause: err });
    case 401:
    case 403:
      return new BackendUnavailableError(
        `cannot ${action} ${where}: permission denied (HTTP ${status}: ${detail}); check the ` +
          'Application Default Credentials and the impersonation chain, and that the acting ' +
          'account may use the bucket',
        { cause: err },
      );
    case 400:
      return new InvalidInputError(`cannot ${action} ${where}: ${detail}`, { cause: err });
    default:
      return new BackendUnavailableError(
        `cannot ${action} ${where}: ${status === undefined ? detail : `HTTP ${status}: ${detail}`}`,
        { cause: err },
      );
  }
}

/**
 * The mapper the store's contract methods run under (see `operation`). Every SDK call already
 * went through `gcsError` where the Backend knew the action and the object, so what arrives here
 * is a tasklog error and passes as it is. Anything else did not come from GCS (the caller's
 * journal failing to load or save): it is not ours to classify and is rethrown unchanged.
 */
export function alreadyMapped(err: unknown): TasklogError {
  if (err instanceof TasklogError) return err;
  throw err;
}
