import type { RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { sendError } from './http-errors.js';

/**
 * Headers on every response: no MIME sniffing of logs as HTML, no framing, no script or style
 * from anywhere (the API serves data; a log that holds HTML stays text), no referrer leaks.
 */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.set({
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Resource-Policy': 'same-origin',
  });
  next();
};

/** Host names a proxy on a loopback address answers to when `server.allowed_hosts` is empty. */
export const LOOPBACK_HOSTS: readonly string[] = Object.freeze(['localhost', '127.0.0.1', '[::1]']);

/**
 * Refuses a request whose `Host` is not one this server is meant to be reached by (421): a page
 * on another site cannot rebind its own name to a proxy on loopback (DNS rebinding) and read
 * logs through the victim's browser. `allowed` entries are host names, optionally with a port;
 * `*.example.com` matches one label. Empty: any host.
 */
export function allowedHosts(allowed: readonly string[], logger: Logger): RequestHandler {
  if (allowed.length === 0) return (_req, _res, next) => next();
  const patterns = allowed.map((n) => {
    const body = n
      .toLowerCase()
      .split('*')
      .map((s) => s.replace(/[\\^$.|?+()[\]{}]/g, '\\$&'))
      .join('[^.:]+');
    // A name without a port matches any port.
    return new RegExp(/:\d+$/.test(n) ? `^${body}$` : `^${body}(?::\\d+)?$`);
  });
  return (req, res, next) => {
    const host = (req.get('host') ?? '').toLowerCase();
    if (patterns.some((p) => p.test(host))) return next();
    logger.warn({ host, path: req.path }, 'request for a host this server does not answer to');
    sendError(
      res,
      421,
      'MISDIRECTED',
      'this server does not answer to that host name (server.allowed_hosts)',
    );
  };
}

/**
 * Writes `data`, waiting for the client to take it for at most `timeoutMs`: a reader who stopped
 * reading would otherwise hold a follower (and the bytes queued for it) for ever. Resolves false,
 * after destroying the response, when the client took nothing for that long.
 */
export async function writeOrCut(
  res: Response,
  data: string | Uint8Array,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  if (res.write(data)) return true;
  const drained = await new Promise<boolean>((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      res.off('drain', onDrain);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(false), timeoutMs);
    res.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  if (!drained) res.destroy();
  return drained;
}
