import { type AttemptKey, validateId } from '../attempt-key.js';
import { AbortedError, InvalidInputError } from '../errors.js';
import type { AttemptFilter } from '../path-template.js';

// Argument checks every store makes the same way.

/** The `{ size, sha256 }` given to `finish()`/`upload()`: InvalidInputError unless well-formed. */
export function validateExpected(expected: { size: number; sha256: string }): void {
  if (!Number.isSafeInteger(expected.size) || expected.size < 0) {
    throw new InvalidInputError(`expected size must be an integer >= 0, got ${expected.size}`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(expected.sha256)) {
    throw new InvalidInputError('expected sha256 must be 64 hex digits');
  }
}

/** A list filter with every given field validated (InvalidInputError names the field). */
export function validateFilter(filter: AttemptFilter): AttemptFilter {
  const out: { -readonly [K in keyof AttemptKey]?: AttemptKey[K] } = {};
  if (filter.dagId !== undefined) out.dagId = validateId('dagId', filter.dagId);
  if (filter.runId !== undefined) out.runId = validateId('runId', filter.runId);
  if (filter.taskId !== undefined) out.taskId = validateId('taskId', filter.taskId);
  for (const field of ['mapIndex', 'tryNumber'] as const) {
    const v = filter[field];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < (field === 'mapIndex' ? -1 : 1)) {
      throw new InvalidInputError(`filter ${field} is out of range: ${v}`);
    }
    out[field] = v;
  }
  return out;
}

/** AbortedError (with the signal's reason as cause) once `signal` has aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError('operation was aborted', { cause: signal.reason });
}
