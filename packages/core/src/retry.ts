import { setTimeout as sleep } from 'node:timers/promises';
import { AbortedError } from './errors.js';

/** Options of `withRetry`. */
export interface RetryOptions {
  /** Tries in all, the first included; default 8. */
  maxAttempts?: number;
  /** Backoff base in ms: the cap of the first sleep; default 100. */
  baseDelayMs?: number;
  /** Upper bound of one sleep in ms; default 20,000. */
  maxDelayMs?: number;
  /** Whether a failure may be retried; default every failure. */
  retryable?: (err: unknown) => boolean;
  /** Called before each sleep, e.g. to log; `attempt` is the try that just failed (1-based). */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Stops retrying: the last failure is thrown, or AbortedError when it aborts a sleep. */
  signal?: AbortSignal;
  /** Source of randomness in [0, 1); default Math.random (tests may seed it). */
  random?: () => number;
}

/**
 * Exponential backoff with FULL jitter: sleep = random(0, min(maxDelay, base · 2^attempt)).
 * Full jitter spreads many clients that failed together over the whole window instead of
 * letting them retry in lockstep (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
 */
export function backoffDelay(
  attempt: number,
  options: Pick<RetryOptions, 'baseDelayMs' | 'maxDelayMs' | 'random'> = {},
): number {
  const base = options.baseDelayMs ?? 100;
  const cap = options.maxDelayMs ?? 20_000;
  const random = options.random ?? Math.random;
  return Math.floor(random() * Math.min(cap, base * 2 ** attempt));
}

/**
 * Runs `fn` until it succeeds, a failure is not retryable, or `maxAttempts` tries failed (the
 * last failure is thrown as is). An abort during a sleep throws AbortedError.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const maxAttempts = options.maxAttempts ?? 8;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= maxAttempts || options.signal?.aborted) throw err;
      if (options.retryable && !options.retryable(err)) throw err;
      const delay = backoffDelay(attempt - 1, options);
      options.onRetry?.(err, attempt, delay);
      try {
        await sleep(delay, undefined, { signal: options.signal });
      } catch (abort) {
        throw new AbortedError('retry was aborted', { cause: abort });
      }
    }
  }
}
