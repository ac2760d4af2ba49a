import { type ErrorCode, isTasklogError, maskUrlPasswords } from '@tasklog/core';
import { ExitCode } from './exit-status.js';

export { ExitCode };

const BY_CODE: Record<ErrorCode, number> = {
  NOT_FOUND: ExitCode.notFound,
  INVALID_INPUT: ExitCode.badInput,
  OFFSET_OUT_OF_RANGE: ExitCode.badInput,
  CONFIG_INVALID: ExitCode.badInput,
  BACKEND_UNAVAILABLE: ExitCode.backendUnavailable,
  INTEGRITY: ExitCode.failed,
  CONFLICT: ExitCode.failed,
  ABORTED: ExitCode.failed,
  UNAUTHORIZED: ExitCode.badInput,
  FORBIDDEN: ExitCode.badInput,
};

export function exitCodeFor(err: unknown): number {
  return isTasklogError(err) ? BY_CODE[err.code] : ExitCode.failed;
}

/** One line (or a few, for config issues) that says what went wrong and what to do. */
export function describeError(err: unknown): string {
  // The one way out for every error message: no URL password leaves with it.
  if (isTasklogError(err)) return maskUrlPasswords(`tasklog: ${err.message}`);
  if (err instanceof Error) {
    return maskUrlPasswords(`tasklog: unexpected error: ${err.stack ?? err.message}`);
  }
  return maskUrlPasswords(`tasklog: unexpected error: ${String(err)}`);
}
