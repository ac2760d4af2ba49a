import { ForbiddenError, UnauthorizedError } from '@tasklog/core';
import type { RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import type { Authenticator } from './authenticator.js';
import { LOOPBACK_PRINCIPAL, mayRead, type Principal } from './principal.js';

/** The request's principal, set by `authenticate()`. */
export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new UnauthorizedError('the request was not authenticated');
  return principal;
}

/**
 * Authenticates every request it sees (401 with `WWW-Authenticate: Bearer` when the token is
 * missing or invalid). Without an authenticator (`auth.mode = "none"`, loopback only) every
 * caller is the loopback principal.
 */
export function authenticate(auth: Authenticator | undefined, logger: Logger): RequestHandler {
  return async (req, res, next) => {
    if (!auth) {
      res.locals.principal = LOOPBACK_PRINCIPAL;
      return next();
    }
    try {
      res.locals.principal = await auth.authenticate(req.get('authorization'));
      next();
    } catch (err) {
      if (err instanceof UnauthorizedError) {
        res.set('WWW-Authenticate', 'Bearer');
        logger.warn(
          { method: req.method, path: req.path, why: err.message },
          'unauthenticated request refused',
        );
      }
      next(err);
    }
  };
}

/**
 * 403 unless the principal may read `:dagId`. Checked before anything is looked up, with the
 * same answer whether the attempt exists or not; the denial is logged (who, what), never the token.
 */
export function requireDagGrant(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const principal = principalOf(res);
    const dagId = String(req.params.dagId ?? '');
    if (mayRead(principal, dagId)) return next();
    logger.warn({ principal: principal.name, dagId, path: req.path }, 'access denied');
    next(new ForbiddenError('you may not read the logs of this DAG'));
  };
}
