/**
 * tasklog's typed errors. Each carries a stable `code`; the server maps codes to HTTP
 * statuses in one place (server `http-errors.ts`) and the CLI maps them to exit codes
 * in one place (cli `exit-codes.ts`). The original error, when there is one, is kept as
 * `cause`.
 */
export type ErrorCode =
  | 'NOT_FOUND'
  | 'INVALID_INPUT'
  | 'OFFSET_OUT_OF_RANGE'
  | 'CONFIG_INVALID'
  | 'BACKEND_UNAVAILABLE'
  | 'INTEGRITY'
  | 'CONFLICT'
  | 'ABORTED'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN';

/** The base of every error tasklog throws; test with `isTasklogError` and switch on `code`. */
export abstract class TasklogError extends Error {
  /** Stable across versions: the server maps it to an HTTP status, the CLI to an exit code. */
  abstract readonly code: ErrorCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The attempt, object or record asked for does not exist. */
export class NotFoundError extends TasklogError {
  /** {@inheritDoc TasklogError.code} */
  readonly code = 'NOT_FOUND' as const;
}

/** A caller gave a value that can never be valid (bad key, bad path, bad option). */
export class InvalidInputError extends TasklogError {
  /** {@inheritDoc TasklogError.code} */
  readonly code = 'INVALID_INPUT' as const;
}

/** A read was asked to start past the end of a log. */
export class OffsetOutOfRangeError extends TasklogError {
  /** {@inheritDoc TasklogError.code} */
  readonly code = 'OFFSET_OUT_OF_RANGE' as const;
  constructor(
    /** The offset asked for. */
    readonly offset: number,
    /** The log's size: the largest valid offset. */
    readonly size: number,
    options?: { cause?: unknown },
  ) {
    super(`offset ${offset} is past the end of the log (${size} bytes)`, options);
  }
}

/** One problem of a configuration, as ConfigError lists them. */
export interface ConfigIssue {
  /** Dotted key, e.g. `store.url`. */
  key: string;
  /** Where the value came from, e.g. `env TASKLOG__STORE__URL`, `file /etc/tasklog.toml`. */
  source: string;
  /** What was expected. */
  message: string;
}

/** The configuration is invalid; `issues` names every bad key, its source and what is expected. */
export class ConfigError extends TasklogError {
  /** {@inheritDoc TasklogError.code} */
  readonly code = 'CONFIG_INVALID' as const;
  constructor(
    /** Every problem found, not just the first. */
    readonly issues: ConfigIssue[],
    options?: { cause?: unknown },
  ) {
    super(
      `invalid configuration:\n${issues.map((i) => `  ${i.key} (from ${i.source}): ${i.message}`).join('\n')}`,
      options,
    );
  }
}

/** A backend (store, catalog, agent) could not be reached or failed; retrying later may help. */
export class BackendUnavailableError extends TasklogError {
  /** {@inheritDoc TasklogError.code} */
  readonly code = 'BACKEND_UNAVAILABLE' as const;
}

/** Stored bytes do not match their expected size or checksum. */
export class IntegrityError extends TasklogError {
  /** {@inheritDoc TasklogError.code} */
  readonly code = 'INTEGRITY' as const;
}

/** The operation conflicts with the current state (e.g. writing to a finished log). */
export class ConflictError extends TasklogError {
  /** {@inheritDoc TasklogError.code} */
  readonly code = 'CONFLICT' as const;
}

/** The operation was cancelled through its AbortSignal. */
export class AbortedError extends TasklogError {
  /** {@inheritDoc TasklogError.code} */
  readonly code = 'ABORTED' as const;
}

/** The caller did not prove who it is: no credential, or one that is garbled, forged or expired. */
export class UnauthorizedError extends TasklogError {
  /** {@inheritDoc TasklogError.code} */
  readonly code = 'UNAUTHORIZED' as const;
}

/** The caller's credential is valid but does not grant this resource (e.g. a token for another attempt). */
export class ForbiddenError extends TasklogError {
  /** {@inheritDoc TasklogError.code} */
  readonly code = 'FORBIDDEN' as const;
}

/** Whether `err` is one of tasklog's coded errors (narrows it to TasklogError). */
export function isTasklogError(err: unknown): err is TasklogError {
  return err instanceof TasklogError;
}

type TasklogErrorClass = new (message: string, options?: { cause?: unknown }) => TasklogError;

/** The class each code is rebuilt as; codes a client cannot act on become the nearest kind. */
const CLASS_OF_CODE: Record<ErrorCode, TasklogErrorClass> = {
  NOT_FOUND: NotFoundError,
  INVALID_INPUT: InvalidInputError,
  OFFSET_OUT_OF_RANGE: InvalidInputError,
  CONFIG_INVALID: BackendUnavailableError,
  BACKEND_UNAVAILABLE: BackendUnavailableError,
  INTEGRITY: IntegrityError,
  CONFLICT: ConflictError,
  ABORTED: AbortedError,
  UNAUTHORIZED: UnauthorizedError,
  FORBIDDEN: ForbiddenError,
};

/** Rebuilds a typed error from its code, e.g. from a server's `{ error: { code, message } }`. */
export function errorFromCode(code: string, message: string, cause?: unknown): TasklogError {
  const ErrorClass = Object.hasOwn(CLASS_OF_CODE, code)
    ? CLASS_OF_CODE[code as ErrorCode]
    : BackendUnavailableError;
  return new ErrorClass(message, { cause });
}
