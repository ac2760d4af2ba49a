import type { RequestHandler } from 'express';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';

// Credentials must never reach the logs, not even masked.
const SECRET_REQUEST_HEADERS = ['authorization', 'proxy-authorization', 'cookie'];
const SECRET_RESPONSE_HEADERS = ['set-cookie'];

function withoutHeaders(
  headers: Record<string, unknown> | undefined,
  names: string[],
): Record<string, unknown> | undefined {
  if (!headers) return headers;
  const copy = { ...headers };
  for (const name of names) delete copy[name];
  return copy;
}

/** pino-http on `logger`, one line per request, with credential headers left out. */
export function requestLogger(logger: Logger): RequestHandler {
  return pinoHttp({
    logger,
    serializers: {
      req: (req: { headers?: Record<string, unknown> }) => ({
        ...req,
        headers: withoutHeaders(req.headers, SECRET_REQUEST_HEADERS),
      }),
      res: (res: { headers?: Record<string, unknown> }) => ({
        ...res,
        headers: withoutHeaders(res.headers, SECRET_RESPONSE_HEADERS),
      }),
    },
  }) as unknown as RequestHandler;
}
