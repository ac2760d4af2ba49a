import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { InvalidInputError, UnauthorizedError } from '@tasklog/core';
import {
  type CryptoKey,
  createRemoteJWKSet,
  importJWK,
  importSPKI,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import type { Principal } from './principal.js';

/** Turns a request's `Authorization` header into a principal, or throws UnauthorizedError. */
export interface Authenticator {
  /** The principal the header proves; UnauthorizedError when it proves none. */
  authenticate(authorization: string | undefined): Promise<Principal>;
}

export function bearer(authorization: string | undefined): string {
  const m = /^Bearer[ ]+([A-Za-z0-9._~+/=-]+)[ ]*$/i.exec(authorization ?? '');
  if (!m) throw new UnauthorizedError('this server needs a bearer token (Authorization: Bearer …)');
  return m[1]!;
}

export interface JwtAuthOptions {
  /** An OIDC provider's JWKS endpoint; keys are fetched, cached and refetched on an unknown `kid`. */
  jwksUrl?: string;
  /** A public key (PEM SPKI or JWK JSON), or a shared secret for HS*; instead of `jwksUrl`. */
  publicKey?: string;
  secret?: string;
  issuer?: string;
  audience?: string;
  /** The only algorithms accepted (never `none`). */
  algorithms: string[];
  clockToleranceSeconds: number;
  /** Claim naming the principal; default `sub`. */
  nameClaim: string;
  /** Claim holding the DAG id patterns (an array, or a space- or comma-separated string). */
  dagsClaim: string;
  /** Claim that is `true` (or lists "admin") for principals with the admin grant. */
  adminClaim: string;
  /** How long fetched JWKS keys are trusted before they are fetched again (seconds); default 300. */
  jwksCacheSeconds?: number;
}

/** Bearer JWTs, as an OIDC provider (Keycloak, Okta, Google, Dex…) issues them. */
export async function jwtAuthenticator(options: JwtAuthOptions): Promise<Authenticator> {
  if (
    options.algorithms.length === 0 ||
    options.algorithms.some((a) => a.toLowerCase() === 'none')
  ) {
    throw new InvalidInputError('auth.algorithms must list real signature algorithms (not none)');
  }
  let key: JWTVerifyGetKey | Uint8Array | CryptoKey;
  if (options.jwksUrl) {
    key = createRemoteJWKSet(new URL(options.jwksUrl), {
      cacheMaxAge: (options.jwksCacheSeconds ?? 300) * 1000,
      // An unknown `kid` refetches the keys (a rotation), but at most once a second, so tokens
      // with made-up key ids cannot make us hammer the identity provider.
      cooldownDuration: 1_000,
    });
  } else if (options.secret) {
    key = new TextEncoder().encode(options.secret);
  } else if (options.publicKey) {
    const text = options.publicKey.trim();
    const alg = options.algorithms[0]!;
    key = text.startsWith('{')
      ? await importJWK(JSON.parse(text), alg)
      : await importSPKI(text, alg);
  } else {
    throw new InvalidInputError(
      'auth.mode = "jwt" needs auth.jwks_url, auth.public_key or auth.secret',
    );
  }
  return {
    async authenticate(authorization) {
      const token = bearer(authorization);
      let payload: JWTPayload;
      try {
        const verify = {
          algorithms: options.algorithms,
          clockTolerance: options.clockToleranceSeconds,
          ...(options.issuer ? { issuer: options.issuer } : {}),
          ...(options.audience ? { audience: options.audience } : {}),
        };
        ({ payload } =
          typeof key === 'function'
            ? await jwtVerify(token, key, verify)
            : await jwtVerify(token, key, verify));
      } catch (cause) {
        throw new UnauthorizedError('the bearer token is not valid here', { cause });
      }
      const name = payload[options.nameClaim];
      if (typeof name !== 'string' || name === '') {
        throw new UnauthorizedError(`the token has no ${options.nameClaim} claim`);
      }
      const admin = payload[options.adminClaim];
      return {
        name,
        dags: patternsOf(payload[options.dagsClaim]),
        admin: admin === true || (Array.isArray(admin) && admin.includes('admin')),
      };
    },
  };
}

function patternsOf(claim: unknown): string[] {
  if (Array.isArray(claim)) return claim.filter((p): p is string => typeof p === 'string');
  if (typeof claim === 'string') return claim.split(/[\s,]+/).filter(Boolean);
  return [];
}

/** One API token as `auth.tokens_file` keeps it: only the token's sha256, never the token. */
export interface StoredToken {
  /** The principal's name. */
  name: string;
  /** Lower-case hex sha256 of the token. */
  sha256: string;
  /** DAG id patterns the token may read (see Principal.dags). */
  dags: string[];
  /** See Principal.admin. */
  admin: boolean;
  /** When the token was created, ISO-8601 UTC. */
  created: string;
}

/** The sha256 under which a token is kept in the tokens file. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * Static API tokens for scripts and services, from `auth.tokens_file` (made by `tasklog token
 * create`). The file is read again when it changes (checked at most once a second), so a new
 * or revoked token needs no restart. Tokens carry 256 random bits, so a plain sha256 is a safe
 * way to keep them; the comparison is constant-time.
 */
export function tokensAuthenticator(file: string): Authenticator {
  let loaded: { mtimeMs: number; tokens: StoredToken[] } | undefined;
  let checkedAt = 0;
  const current = async (): Promise<StoredToken[]> => {
    if (loaded && Date.now() - checkedAt < 1000) return loaded.tokens;
    checkedAt = Date.now();
    const info = await stat(file).catch(() => undefined);
    if (!info) return [];
    if (loaded?.mtimeMs !== info.mtimeMs) {
      loaded = { mtimeMs: info.mtimeMs, tokens: await readTokensFile(file) };
    }
    return loaded.tokens;
  };
  return {
    async authenticate(authorization) {
      const digest = Buffer.from(tokenDigest(bearer(authorization)), 'hex');
      for (const t of await current()) {
        const stored = Buffer.from(t.sha256, 'hex');
        if (stored.length === digest.length && timingSafeEqual(stored, digest)) {
          return { name: t.name, dags: t.dags, admin: t.admin };
        }
      }
      throw new UnauthorizedError('unknown API token');
    },
  };
}

/**
 * The tokens of `auth.tokens_file`; none when the file does not exist, malformed entries skipped.
 * Throws InvalidInputError when the file cannot be read or is not JSON.
 */
export async function readTokensFile(file: string): Promise<StoredToken[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new InvalidInputError(`cannot read auth.tokens_file ${file}`, { cause: err });
  }
  try {
    const doc = JSON.parse(text) as { tokens?: StoredToken[] };
    return (doc.tokens ?? []).filter(
      (t) => typeof t.name === 'string' && /^[0-9a-f]{64}$/.test(t.sha256) && Array.isArray(t.dags),
    );
  } catch (cause) {
    throw new InvalidInputError(`auth.tokens_file ${file} is not valid JSON`, { cause });
  }
}
