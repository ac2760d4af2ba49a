import type { TasklogError } from '../../errors.js';
import { throwIfAborted } from './store-checks.js';

/** Maps whatever a backend call threw onto one of tasklog's errors (passing those through). */
export type ErrorMapper = (err: unknown) => TasklogError;

/**
 * How a store method runs: its input already validated (a bad key throws InvalidInputError
 * before anything is sent), it checks the signal, makes the call, and maps any failure in one
 * place, so every method of every backend fails the same way.
 */
export async function operation<T>(
  signal: AbortSignal | undefined,
  mapError: ErrorMapper,
  call: () => Promise<T>,
): Promise<T> {
  try {
    throwIfAborted(signal);
    return await call();
  } catch (err) {
    throw mapError(err);
  }
}

/** `operation` for a method that streams (`read`, `list`): failures while iterating are mapped too. */
export async function* streamOperation<T>(
  signal: AbortSignal | undefined,
  mapError: ErrorMapper,
  call: () => AsyncIterable<T>,
): AsyncGenerator<T> {
  try {
    throwIfAborted(signal);
    yield* call();
  } catch (err) {
    throw mapError(err);
  }
}
