/**
 * One RPC as both transports run it: the fault decided for it (mapped onto gRPC codes), the
 * work on the entry store, and its line in the request log.
 *
 * Fault mapping: 503 → UNAVAILABLE, 429 → RESOURCE_EXHAUSTED, 500 → INTERNAL,
 * 408 → DEADLINE_EXCEEDED, reset → UNAVAILABLE before anything is done, `resetAfterCommit` →
 * the work is done and the call still fails with UNAVAILABLE (the answer is lost).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FaultAction } from '../shared/fault-injector.js';
import { appendBounded } from '../shared/request-log.js';
import { Code, LoggingApiError } from './entry-store.js';

export interface RequestLogEntry {
  transport: 'grpc' | 'rest';
  /** RPC name: `WriteLogEntries`, `ListLogEntries`, `DeleteLog`. */
  method: string;
  /** gRPC status code sent (0 = OK); for REST the gRPC code the HTTP answer stands for. */
  code: number;
  /** The fault injected, if any. */
  fault?: string;
  /** Entries in a write request. */
  entries?: number;
}

export interface Call<T> {
  transport: 'grpc' | 'rest';
  method: string;
  action: FaultAction | undefined;
  /** Entries in a write request, for the log. */
  entries?: number | undefined;
  /** Returns the response message; throws LoggingApiError. */
  work: () => T;
}

export type RunCall = <T>(call: Call<T>) => Promise<T>;

/** Every call, oldest first (the last 100,000: record stores see many small writes). */
const REQUEST_LOG_LIMIT = 100_000;

/** Runs calls through their faults, appending each to `requestLog`. */
export function callRunner(requestLog: RequestLogEntry[]): RunCall {
  return async <T>({ transport, method, action, entries, work }: Call<T>): Promise<T> => {
    const plan = planFault(action);
    const record = (code: number) =>
      appendBounded(
        requestLog,
        {
          transport,
          method,
          code,
          ...(plan ? { fault: plan.label } : {}),
          ...(entries !== undefined ? { entries } : {}),
        },
        REQUEST_LOG_LIMIT,
      );
    if (plan?.delayMs) await sleep(plan.delayMs);
    if (plan?.before) {
      record(plan.before.code);
      throw new LoggingApiError(plan.before.code, plan.before.message);
    }
    let result: T;
    try {
      result = work();
    } catch (err) {
      record(err instanceof LoggingApiError ? err.code : Code.INTERNAL);
      throw err;
    }
    if (plan?.after) {
      record(plan.after.code);
      throw new LoggingApiError(plan.after.code, plan.after.message);
    }
    record(Code.OK);
    return result;
  };
}

interface FaultPlan {
  /** Fail before doing anything with this code. */
  before?: { code: number; message: string };
  /** Do the work, then fail with this code. */
  after?: { code: number; message: string };
  delayMs?: number;
  label: string;
}

const STATUS_CODES: Record<number, [number, string]> = {
  503: [Code.UNAVAILABLE, 'The service is currently unavailable.'],
  429: [
    Code.RESOURCE_EXHAUSTED,
    "Quota exceeded for quota metric 'Write requests' of service 'logging.googleapis.com'.",
  ],
  500: [Code.INTERNAL, 'Internal error encountered.'],
  408: [Code.DEADLINE_EXCEEDED, 'Deadline expired before operation could complete.'],
};

function planFault(action: FaultAction | undefined): FaultPlan | undefined {
  if (!action) return undefined;
  if ('delayMs' in action) return { delayMs: action.delayMs, label: `delay ${action.delayMs}ms` };
  if ('status' in action) {
    const [code, message] = STATUS_CODES[action.status]!;
    return { before: { code, message }, label: String(action.status) };
  }
  if ('reset' in action && action.resetAfterCommit) {
    return {
      after: { code: Code.UNAVAILABLE, message: 'Connection reset by peer' },
      label: 'resetAfterCommit',
    };
  }
  return {
    before: { code: Code.UNAVAILABLE, message: 'Connection reset by peer' },
    label: 'reset',
  };
}
