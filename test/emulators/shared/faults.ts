/**
 * What the HTTP emulators do with the FaultInjector's decisions: carry out an action before
 * the emulator's own work, and the `/_emulator/faults…` control routes that set rules from
 * another process (an emulator started with `tasklog-emulator`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type FaultAction,
  FaultInjector,
  type FaultMatch,
  type FaultRule,
  type FaultStatus,
  type RandomFaultOptions,
} from './fault-injector.js';
import { drain, dropConnection, type HttpExchange } from './http-exchange.js';

/**
 * Carries out `fault` before the request is served. Returns true when the request is finished
 * (answered by `answerStatus` in the emulator's own error format, or its connection dropped);
 * false when the emulator is to serve it, possibly late, or losing or cutting its answer.
 */
export async function applyHttpFault(
  ex: HttpExchange,
  fault: FaultAction | undefined,
  answerStatus: (status: FaultStatus) => void,
  signal: AbortSignal,
): Promise<boolean> {
  if (!fault) return false;
  if ('delayMs' in fault) {
    await sleep(fault.delayMs, undefined, { signal });
    return false;
  }
  if ('status' in fault) {
    await drain(ex.req);
    answerStatus(fault.status);
    return true;
  }
  if ('reset' in fault) {
    if (fault.resetAfterCommit) {
      ex.dropAnswer = true;
      return false;
    }
    if (fault.afterBody) await drain(ex.req);
    dropConnection(ex);
    return true;
  }
  ex.truncateAfter = fault.truncateBodyAfter;
  return false;
}

export interface ControlAnswer {
  status: number;
  body?: unknown;
}

export interface ControlTarget {
  faults: FaultInjector;
  requestLog: unknown[];
}

/**
 * The control routes every HTTP emulator shares (`route` is `METHOD /path`, no trailing slash):
 *   POST   /_emulator/faults         FaultRule as JSON (match.path: substring; match.pathRegExp:
 *                                    pattern source) → { id }
 *   POST   /_emulator/faults/random  RandomFaultOptions (same match) → { id }
 *   POST   /_emulator/faults/seed    { seed }
 *   DELETE /_emulator/faults[/ID]    all rules, or one
 *   GET    /_emulator/requests       the request log;  DELETE clears it
 * Returns undefined for any other route, which the emulator answers itself. A bad rule is
 * thrown as `invalid(message)`, the emulator's own 400.
 */
export async function faultControl(
  ex: HttpExchange,
  route: string,
  target: ControlTarget,
  readJson: () => Promise<Record<string, unknown>>,
  invalid: (message: string) => Error,
): Promise<ControlAnswer | undefined> {
  const { faults } = target;
  const faultId = /^DELETE \/_emulator\/faults\/(\d+)$/.exec(route);
  if (faultId) {
    await drain(ex.req);
    return { status: faults.remove(Number(faultId[1])) ? 204 : 404 };
  }
  switch (route) {
    case 'POST /_emulator/faults': {
      const rule = ruleFromJson(await readJson(), invalid);
      return { status: 200, body: { id: faults.add(rule).id } };
    }
    case 'POST /_emulator/faults/random': {
      const body = await readJson();
      const match = matchFromJson(body.match, invalid);
      const options = { ...body, ...(match ? { match } : {}) } as unknown as RandomFaultOptions;
      return { status: 200, body: { id: checked(() => faults.failRandomly(options), invalid).id } };
    }
    case 'POST /_emulator/faults/seed':
      faults.seed(Number((await readJson()).seed ?? 0));
      return { status: 204 };
    case 'DELETE /_emulator/faults':
      await drain(ex.req);
      faults.clear();
      return { status: 204 };
    case 'GET /_emulator/requests':
      await drain(ex.req);
      return { status: 200, body: target.requestLog };
    case 'DELETE /_emulator/requests':
      await drain(ex.req);
      target.requestLog.length = 0;
      return { status: 204 };
    default:
      return undefined;
  }
}

/** `/_emulator` and everything under it; never logged, never faulted. */
export function isControlPath(pathname: string): boolean {
  return pathname === '/_emulator' || pathname.startsWith('/_emulator/');
}

function matchFromJson(
  value: unknown,
  invalid: (message: string) => Error,
): FaultMatch | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object') throw invalid('match must be an object');
  const m = value as Record<string, unknown>;
  const match: FaultMatch = {};
  if (typeof m.method === 'string') match.method = m.method;
  if (typeof m.uploadType === 'string') match.uploadType = m.uploadType;
  if (typeof m.path === 'string') match.path = m.path;
  if (typeof m.pathRegExp === 'string') match.path = new RegExp(m.pathRegExp);
  return match;
}

function ruleFromJson(
  body: Record<string, unknown>,
  invalid: (message: string) => Error,
): FaultRule {
  const match = matchFromJson(body.match, invalid);
  const rule = { ...body, ...(match ? { match } : {}) } as unknown as FaultRule;
  // Validation happens in FaultInjector.add; a bad rule is the caller's error (400).
  checked(() => new FaultInjector().add(rule), invalid);
  return rule;
}

function checked<T>(run: () => T, invalid: (message: string) => Error): T {
  try {
    return run();
  } catch (err) {
    throw invalid(`Invalid fault rule: ${(err as Error).message}`);
  }
}
