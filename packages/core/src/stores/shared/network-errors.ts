// Node's socket-level failures: the request got no answer at all (refused, reset, timed out, no
// DNS, no route). Every SDK that surfaces Node's errors (the AWS SDK, google-gax's REST
// transport) reports them the same way, so one table serves every backend.

/**
 * Codes of a connection that failed. The AWS SDK retries the same ones
 * (`NODEJS_TIMEOUT_ERROR_CODES` and `NODEJS_NETWORK_ERROR_CODES` of @smithy/core's retry
 * classification); ECONNABORTED is what Node says of a socket a timeout or the peer cut short.
 */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/**
 * The code of `err` when it is a failed connection: Node's own `code`, or, when there is none,
 * the first among an AggregateError's `errors` (a connect that tried several addresses, as Node's
 * autoSelectFamily does, fails with one error per address).
 */
export function networkErrorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; errors?: { code?: unknown }[] } | null | undefined;
  const code = e?.code ?? e?.errors?.find((x) => x?.code)?.code;
  return typeof code === 'string' && NETWORK_ERROR_CODES.has(code) ? code : undefined;
}
