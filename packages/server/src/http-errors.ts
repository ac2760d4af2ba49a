import type { ErrorCode } from '@tasklog/core';
import { isTasklogError, maskUrlPasswords } from '@tasklog/core';
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';

/**
 * The one mapping of TasklogError codes to HTTP statuses. 499 is nginx's "client closed
 * request": an aborted request usually has nobody left to answer, but the log says why it ended.
 */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  NOT_FOUND: 404,
  INVALID_INPUT: 400,
  OFFSET_OUT_OF_RANGE: 416,
  CONFIG_INVALID: 500,
  BACKEND_UNAVAILABLE: 503,
  INTEGRITY: 500,
  CONFLICT: 409,
  ABORTED: 499,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
};

/**
 * The codes of error answers that HTTP itself gives rather than a TasklogError, with the status
 * each comes with (`BAD_REQUEST`: any other 4xx that Express or its router raised).
 */
export const HTTP_ONLY_ERRORS = {
  BAD_REQUEST: undefined,
  INTERNAL: 500,
  MISDIRECTED: 421,
  UI_NOT_BUILT: 503,
} as const satisfies Record<string, number | undefined>;

/** Every `error.code` an answer may carry: the OpenAPI document lists exactly these. */
export type ApiErrorCode = ErrorCode | keyof typeof HTTP_ONLY_ERRORS;

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: { code: ApiErrorCode; message: string };
}

interface HttpProblem {
  status: number;
  code: ApiErrorCode;
  /** Safe to show to the client. */
  message: string;
}

/** What the client is told about `err`; unknown errors get a generic message. */
export function describeError(err: unknown): HttpProblem {
  if (isTasklogError(err)) {
    return { status: HTTP_STATUS[err.code], code: err.code, message: err.message };
  }
  // Errors raised by express and its router (a malformed %-escape in the path, a bad body)
  // carry an http-errors style 4xx `status`; `expose: false` marks a message not to show.
  const e = err as { status?: unknown; expose?: unknown; message?: unknown } | null;
  if (e && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    const show = e.expose !== false && typeof e.message === 'string';
    return {
      status: e.status,
      code: e.status === 400 ? 'INVALID_INPUT' : e.status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST',
      message: show ? (e.message as string) : 'bad request',
    };
  }
  return { status: 500, code: 'INTERNAL', message: 'internal server error' };
}

/** Writes `{ error: { code, message } }` with `status`. */
export function sendError(
  res: Response,
  status: number,
  code: ApiErrorCode,
  message: string,
): void {
  // The one way out for every error message: no URL password leaves with it.
  const body: ErrorBody = { error: { code, message: maskUrlPasswords(message) } };
  res.status(status).set('Cache-Control', 'no-store').json(body);
}

/** 416 for a `Range` header that no byte of a log of `size` bytes satisfies (RFC 9110 §15.5.17). */
export function sendUnsatisfiableRange(res: Response, rangeHeader: string, size: number): void {
  res.setHeader('Content-Range', `bytes */${size}`);
  sendError(
    res,
    HTTP_STATUS.OFFSET_OUT_OF_RANGE,
    'OFFSET_OUT_OF_RANGE',
    `range "${rangeHeader}" is not satisfiable for a log of ${size} bytes`,
  );
}

/** JSON 404 for every route the app does not have. */
export const notFoundHandler: RequestHandler = (req, res) => {
  sendError(res, 404, 'NOT_FOUND', `no route for ${req.method} ${req.path}`);
};

/**
 * The app's last middleware. When the response has already started (a store failed in the
 * middle of a log) there is no way to signal an error in-band, so the connection is destroyed:
 * the client sees a truncated body instead of a body that looks complete.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const problem = describeError(err);
    const log = (req as { log?: Logger }).log ?? logger;
    if (problem.status >= 500) {
      log.error({ err }, 'request failed');
    } else {
      log.debug({ err }, 'request rejected');
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(res, problem.status, problem.code, problem.message);
  };
}
