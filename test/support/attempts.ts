import { type AttemptKey, attemptKey } from '@tasklog/core';

/**
 * Makes the attempt keys of a test file: each one `base` but for the fields a test names, e.g.
 * `key({ tryNumber: 2 })`. Unless `base` says otherwise, the first try of an unmapped task.
 */
export function attemptKeys(
  base: Pick<AttemptKey, 'dagId' | 'runId' | 'taskId'> & Partial<AttemptKey>,
): (overrides?: Partial<AttemptKey>) => AttemptKey {
  return (overrides = {}) => attemptKey({ tryNumber: 1, ...base, ...overrides });
}
