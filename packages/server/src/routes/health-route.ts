import { type Catalog, type LogStore, maskUrlPasswords } from '@tasklog/core';
import type { RequestHandler } from 'express';
import type { Authenticator } from '../auth/authenticator.js';

interface PartHealth {
  ok: boolean;
  error?: string;
}

/** Waits for `check` at most `ms`; a hung backend must not hang the health check too. */
export async function probe(
  check: (signal: AbortSignal) => Promise<void>,
  ms: number,
): Promise<PartHealth> {
  const signal = AbortSignal.timeout(ms);
  let onAbort: (() => void) | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    onAbort = () => reject(new Error(`no answer within ${ms} ms`));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([check(signal), timedOut]);
    return { ok: true };
  } catch (err) {
    return { ok: false, error: maskUrlPasswords(err instanceof Error ? err.message : String(err)) };
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * `GET /health`: 200 `{ status: 'ok', ... }` when both the catalog and the configured store
 * answer, else 503 `{ status: 'unavailable', ... }`. Open to everyone (load balancers probe it),
 * but only a caller with the admin grant (or anyone, without `auth`) sees which part failed, its
 * error and the store's URL.
 */
export function healthRoute(deps: {
  catalog: Catalog;
  store: LogStore;
  timeoutMs: number;
  auth?: Authenticator;
}): RequestHandler {
  return async (req, res) => {
    const [catalog, store] = await Promise.all([
      probe(() => deps.catalog.ping(), deps.timeoutMs),
      probe((signal) => deps.store.ping({ signal }), deps.timeoutMs),
    ]);
    const ok = catalog.ok && store.ok;
    const status = ok ? 'ok' : 'unavailable';
    const admin = deps.auth
      ? await deps.auth.authenticate(req.get('authorization')).then(
          (p) => p.admin,
          () => false,
        )
      : true;
    res
      .status(ok ? 200 : 503)
      .set('Cache-Control', 'no-store')
      .json(admin ? { status, catalog, store: { ...store, url: deps.store.url } } : { status });
  };
}

/**
 * `GET /health/live`: the process answers (a liveness probe restarts it when it does not). It
 * asks nothing of the catalog or the store: their outage is not a reason to restart.
 */
export const liveRoute: RequestHandler = (_req, res) => {
  res.set('Cache-Control', 'no-store').json({ status: 'ok' });
};
