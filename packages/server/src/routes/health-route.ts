import type { Catalog, LogStore } from '@tasklog/core';
import type { RequestHandler } from 'express';

interface PartHealth {
  ok: boolean;
  error?: string;
}

/** Waits for `check` at most `ms`; a hung backend must not hang the health check too. */
async function probe(
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
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
  }
}

/**
 * `GET /health`: 200 `{ status: 'ok', ... }` when both the catalog and the configured store
 * answer, else 503 `{ status: 'unavailable', ... }` with the failing part's error message.
 */
export function healthRoute(deps: {
  catalog: Catalog;
  store: LogStore;
  timeoutMs: number;
}): RequestHandler {
  return async (_req, res) => {
    const [catalog, store] = await Promise.all([
      probe(() => deps.catalog.ping(), deps.timeoutMs),
      probe((signal) => deps.store.ping({ signal }), deps.timeoutMs),
    ]);
    const ok = catalog.ok && store.ok;
    res
      .status(ok ? 200 : 503)
      .set('Cache-Control', 'no-store')
      .json({
        status: ok ? 'ok' : 'unavailable',
        catalog,
        store: { ...store, url: deps.store.url },
      });
  };
}
