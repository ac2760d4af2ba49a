import { InvalidInputError, type TasklogConfig } from '@tasklog/core';
import { type Authenticator, jwtAuthenticator, tokensAuthenticator } from './authenticator.js';

/** The authenticator `[auth]` describes; undefined for `mode = "none"`. */
export async function authenticatorFromConfig(
  auth: TasklogConfig['auth'],
): Promise<Authenticator | undefined> {
  if (auth.mode === 'none') return undefined;
  if (auth.mode === 'tokens') return tokensAuthenticator(auth.tokens_file);
  return jwtAuthenticator({
    jwksUrl: auth.jwks_url,
    publicKey: auth.public_key,
    secret: auth.secret,
    issuer: auth.issuer,
    audience: auth.audience,
    algorithms: auth.algorithms.split(',').map((a) => a.trim()),
    clockToleranceSeconds: auth.clock_tolerance,
    jwksCacheSeconds: auth.jwks_cache,
    nameClaim: auth.name_claim,
    dagsClaim: auth.dags_claim,
    adminClaim: auth.admin_claim,
  });
}

/** Whether `host` (a `server.host` value) only listens on this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Refuses a proxy that would serve every log to anyone who reaches it: no authentication on an
 * address other than loopback, unless the operator said so with `--insecure-no-auth`.
 */
export function assertAuthFor(host: string, auth: Authenticator | undefined, insecure: boolean) {
  if (auth || isLoopback(host) || insecure) return;
  throw new InvalidInputError(
    `tasklog serve would listen on ${host} without authentication, so anyone who reaches it ` +
      'could read every log: set auth.mode = "jwt" (auth.jwks_url of your OIDC provider) or ' +
      '"tokens" (tasklog token create), or pass --insecure-no-auth to accept that',
  );
}
