/** Who a request comes from, once authenticated, and what they may read. */
export interface Principal {
  /** The token's subject (JWT) or the API token's name: logged with denials, never the token. */
  readonly name: string;
  /** DAG id patterns this principal may read: `*` any run of characters, `?` one character. */
  readonly dags: readonly string[];
  /** May see agent and store URLs and the details of `/health`. */
  readonly admin: boolean;
}

/** `auth.mode = "none"` on loopback: whoever can reach the port may read everything. */
export const LOOPBACK_PRINCIPAL: Principal = Object.freeze({
  name: 'anonymous (auth.mode = none, loopback)',
  dags: Object.freeze(['*']),
  admin: true,
});

const matchers = new WeakMap<readonly string[], RegExp>();

/** Whether `principal` may read the logs of `dagId`. */
export function mayRead(principal: Principal, dagId: string): boolean {
  let re = matchers.get(principal.dags);
  if (!re) {
    re = dagPatterns(principal.dags);
    matchers.set(principal.dags, re);
  }
  return re.test(dagId);
}

/**
 * One anchored expression for a list of DAG id patterns. Every character but `*` and `?` is
 * literal (escaped), so a pattern can never be a regular expression of its own making.
 */
export function dagPatterns(patterns: readonly string[]): RegExp {
  if (patterns.length === 0) return /(?!)/;
  const one = (p: string) =>
    [...p]
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.|+()[\]{}]/g, '\\$&')))
      .join('');
  return new RegExp(`^(?:${patterns.map(one).join('|')})$`, 'su');
}
