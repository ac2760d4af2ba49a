/**
 * Per-request fault injection, shared by every emulator (each maps the actions onto its own
 * protocol). Rules are checked in the order they were added; the first rule that matches and
 * fires decides the request's fate.
 */
import { mulberry32 } from './prng.js';

export type FaultStatus = 500 | 503 | 429 | 408;

export type FaultAction =
  /** Answer with this status and Google's JSON error body; the request changes nothing. */
  | { status: FaultStatus }
  /**
   * Destroy the socket without answering. By default nothing is read or stored. With
   * `afterBody` the request body is read (and dropped) first. With `resetAfterCommit` the
   * request is fully carried out (the upload is stored) and only the answer is lost: the
   * "uncertain failure" a client must survive.
   */
  | { reset: true; afterBody?: boolean; resetAfterCommit?: boolean }
  /** Wait, then serve the request normally. */
  | { delayMs: number }
  /** Send the status line, headers and the first N body bytes, then destroy the socket. */
  | { truncateBodyAfter: number };

export interface FaultMatch {
  /** HTTP method, case-insensitive. */
  method?: string;
  /** Tested against the raw request target (path and query); a string matches as a substring. */
  path?: RegExp | string;
  /** The `uploadType` query parameter (`media`, `multipart`, `resumable`). */
  uploadType?: string;
}

export interface FaultRule {
  match?: FaultMatch;
  /** One action, or several of which one is picked (seeded PRNG) each time the rule fires. */
  action: FaultAction | readonly FaultAction[];
  /** How many times the rule fires before it retires; unlimited by default. */
  times?: number;
  /** Let this many matching requests through untouched before the rule starts firing. */
  skip?: number;
  /** Chance (0..1) that a matching request is hit; drawn from the seeded PRNG. Default 1. */
  probability?: number;
}

export interface FaultHandle {
  readonly id: number;
  /** How many requests this rule has hit so far. */
  readonly hits: number;
  remove(): void;
}

export type RandomFaultKind = '500' | '503' | '429' | '408' | 'reset' | 'resetAfterCommit';

export interface RandomFaultOptions {
  probability: number;
  seed?: number;
  /** Default `['503', '500', 'reset']`. */
  kinds?: readonly RandomFaultKind[];
  match?: FaultMatch;
}

export interface FaultRequest {
  method: string;
  /** Raw request target: path and query as received. */
  path: string;
  /** GCS's `uploadType` query parameter; other emulators have none. */
  uploadType?: string | undefined;
}

interface ActiveRule {
  id: number;
  rule: FaultRule;
  hits: number;
  skipped: number;
}

const DEFAULT_SEED = 0x2545f491;

export class FaultInjector {
  #rules: ActiveRule[] = [];
  #nextId = 1;
  #random = mulberry32(DEFAULT_SEED);

  add(rule: FaultRule): FaultHandle {
    validateRule(rule);
    const active: ActiveRule = { id: this.#nextId++, rule, hits: 0, skipped: 0 };
    this.#rules.push(active);
    return {
      id: active.id,
      get hits() {
        return active.hits;
      },
      remove: () => this.remove(active.id),
    };
  }

  remove(id: number): boolean {
    const before = this.#rules.length;
    this.#rules = this.#rules.filter((r) => r.id !== id);
    return this.#rules.length !== before;
  }

  clear(): void {
    this.#rules = [];
  }

  /** Restarts the PRNG used for `probability` and for picking among several actions. */
  seed(n: number): void {
    this.#random = mulberry32(n >>> 0 || DEFAULT_SEED);
  }

  /** Adds one rule that fails a `probability` share of requests with one of `kinds`. */
  failRandomly(options: RandomFaultOptions): FaultHandle {
    if (options.seed !== undefined) this.seed(options.seed);
    const kinds = options.kinds ?? ['503', '500', 'reset'];
    if (kinds.length === 0) throw new RangeError('failRandomly needs at least one kind');
    return this.add({
      ...(options.match ? { match: options.match } : {}),
      probability: options.probability,
      action: kinds.map(kindToAction),
    });
  }

  get size(): number {
    return this.#rules.length;
  }

  /** Decides the fault for one request, if any; counts the hit. */
  pick(req: FaultRequest): FaultAction | undefined {
    for (const active of this.#rules) {
      const { rule } = active;
      if (!matches(rule.match, req)) continue;
      if (rule.skip !== undefined && active.skipped < rule.skip) {
        active.skipped++;
        continue;
      }
      if (
        rule.probability !== undefined &&
        rule.probability < 1 &&
        this.#random() >= rule.probability
      )
        continue;
      active.hits++;
      if (rule.times !== undefined && active.hits >= rule.times) this.remove(active.id);
      const { action } = rule;
      if (isActionList(action)) return action[Math.floor(this.#random() * action.length)];
      return action;
    }
    return undefined;
  }
}

function isActionList(action: FaultRule['action']): action is readonly FaultAction[] {
  return Array.isArray(action);
}

function matches(match: FaultMatch | undefined, req: FaultRequest): boolean {
  if (!match) return true;
  if (match.method && match.method.toUpperCase() !== req.method.toUpperCase()) return false;
  if (match.uploadType !== undefined && match.uploadType !== req.uploadType) return false;
  if (match.path !== undefined) {
    if (typeof match.path === 'string') {
      if (!req.path.includes(match.path)) return false;
    } else {
      match.path.lastIndex = 0;
      if (!match.path.test(req.path)) return false;
    }
  }
  return true;
}

function kindToAction(kind: RandomFaultKind): FaultAction {
  switch (kind) {
    case 'reset':
      return { reset: true };
    case 'resetAfterCommit':
      return { reset: true, resetAfterCommit: true };
    default:
      return { status: Number(kind) as FaultStatus };
  }
}

const STATUSES = new Set([500, 503, 429, 408]);

function validateRule(rule: FaultRule): void {
  const actions = isActionList(rule.action) ? rule.action : [rule.action];
  if (actions.length === 0) throw new RangeError('a fault rule needs an action');
  for (const action of actions) {
    if ('status' in action && !STATUSES.has(action.status)) {
      throw new RangeError(`unsupported fault status ${String(action.status)}`);
    }
    if ('delayMs' in action && !(action.delayMs >= 0)) throw new RangeError('delayMs must be >= 0');
    if ('truncateBodyAfter' in action && !(action.truncateBodyAfter >= 0)) {
      throw new RangeError('truncateBodyAfter must be >= 0');
    }
    if (
      !(
        'status' in action ||
        'reset' in action ||
        'delayMs' in action ||
        'truncateBodyAfter' in action
      )
    ) {
      throw new RangeError('unknown fault action');
    }
  }
  if (rule.probability !== undefined && !(rule.probability >= 0 && rule.probability <= 1)) {
    throw new RangeError('probability must be within 0..1');
  }
  if (rule.times !== undefined && !(Number.isInteger(rule.times) && rule.times > 0)) {
    throw new RangeError('times must be a positive integer');
  }
  if (rule.skip !== undefined && !(Number.isInteger(rule.skip) && rule.skip >= 0)) {
    throw new RangeError('skip must be a non-negative integer');
  }
}
