import { createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type CryptoKey, importJWK, type JWTPayload, jwtVerify, SignJWT } from 'jose';
import { ForbiddenError, InvalidInputError, UnauthorizedError } from './errors.js';

/**
 * Signed, short-lived tokens with which the proxy asks a worker's agent for the live log of
 * one running attempt. A token names exactly one attempt by its relative log path; the agent
 * compares that path byte for byte with the path it was asked for.
 */

/** HS* share one secret between proxy and agents; EdDSA (Ed25519) and ES256 let agents hold only a public key. */
export type AgentTokenAlgorithm = 'HS256' | 'HS512' | 'EdDSA' | 'ES256';

/** Every AgentTokenAlgorithm, e.g. to validate a configured one. */
export const AGENT_TOKEN_ALGORITHMS: readonly AgentTokenAlgorithm[] = [
  'HS256',
  'HS512',
  'EdDSA',
  'ES256',
];

/** The default `aud` claim. */
export const AGENT_TOKEN_AUDIENCE = 'tasklog-agent';

/**
 * Upper bound for `expiresInSeconds`, and the oldest `iat` an agent accepts. Tokens are minted
 * per request; a long-lived one would be a bearer credential worth stealing.
 */
export const MAX_AGENT_TOKEN_LIFETIME_SECONDS = 3600;

// Explicit typing (RFC 8725 §3.11): another JWT signed with the same key, meant for another
// purpose, is not accepted as an agent token.
const TOKEN_TYPE = 'tasklog-agent+jwt';
// Our tokens are ~300 characters; anything far bigger is garbage and is not worth parsing.
const MAX_TOKEN_LENGTH = 4096;
// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
const MIN_SECRET_BYTES: Record<'HS256' | 'HS512', number> = { HS256: 32, HS512: 64 };

/**
 * Keys for one of two setups. With a shared secret both keys are that secret. With a key pair
 * the proxy holds the private key (and signs), agents hold only the public key (and verify).
 */
export interface AgentTokenKeys {
  /** The only algorithm accepted when verifying. */
  readonly algorithm: AgentTokenAlgorithm;
  /** Absent on an agent that holds only a public key; `signAgentToken` then throws. */
  readonly signingKey?: CryptoKey | Uint8Array;
  /** Checks a token's signature. */
  readonly verificationKey: CryptoKey | Uint8Array;
}

/**
 * Where the key material comes from. Each value may be given inline or as a file (not both).
 * Key strings are PEM (PKCS#8 / SEC1 private keys, SPKI public keys) or a JWK as JSON.
 */
export interface AgentTokenKeySource {
  /** One of AGENT_TOKEN_ALGORITHMS. */
  algorithm: AgentTokenAlgorithm;
  /** HS256/HS512: the shared secret, as UTF-8; at least 32 bytes (HS256) or 64 bytes (HS512). */
  secret?: string;
  /** HS256/HS512: file holding the secret; one trailing line break is ignored. */
  secretFile?: string;
  /** EdDSA/ES256: the private key (proxy). The public key is derived from it when not given. */
  privateKeyPem?: string;
  /** EdDSA/ES256: file holding the private key. */
  privateKeyFile?: string;
  /** EdDSA/ES256: the public key (agent). Must match the private key when both are given. */
  publicKeyPem?: string;
  /** EdDSA/ES256: file holding the public key. */
  publicKeyFile?: string;
}

/**
 * Reads and checks key material. Throws InvalidInputError for an unknown algorithm, a secret that
 * is too short, material that does not fit the algorithm (a secret for EdDSA, a P-384 key for
 * ES256, a private key where a public key belongs), a public key that does not match the private
 * key, or a file that cannot be read.
 */
export async function loadAgentTokenKeys(source: AgentTokenKeySource): Promise<AgentTokenKeys> {
  const { algorithm } = source;
  if (!AGENT_TOKEN_ALGORITHMS.includes(algorithm)) {
    throw new InvalidInputError(
      `agent token algorithm must be one of ${AGENT_TOKEN_ALGORITHMS.join(', ')}, got ${JSON.stringify(algorithm)}`,
    );
  }
  const secret = await material('secret', source.secret, source.secretFile);
  const privateText = await material('privateKey', source.privateKeyPem, source.privateKeyFile);
  const publicText = await material('publicKey', source.publicKeyPem, source.publicKeyFile);

  if (algorithm === 'HS256' || algorithm === 'HS512') {
    if (privateText !== undefined || publicText !== undefined) {
      throw new InvalidInputError(`${algorithm} uses a shared secret, not a private or public key`);
    }
    if (secret === undefined) throw new InvalidInputError(`${algorithm} needs a secret`);
    const bytes = Buffer.from(stripLineBreak(secret), 'utf8');
    const min = MIN_SECRET_BYTES[algorithm];
    if (bytes.length < min) {
      throw new InvalidInputError(
        `the ${algorithm} secret must be at least ${min} bytes, got ${bytes.length}`,
      );
    }
    const key = new Uint8Array(bytes);
    return Object.freeze({ algorithm, signingKey: key, verificationKey: key });
  }

  if (secret !== undefined) {
    throw new InvalidInputError(`${algorithm} uses a key pair, not a shared secret`);
  }
  if (privateText === undefined && publicText === undefined) {
    throw new InvalidInputError(
      `${algorithm} needs a private key (to sign) or a public key (to verify)`,
    );
  }
  const privateKey = privateText === undefined ? undefined : parsePrivateKey(privateText);
  const publicKey = publicText === undefined ? undefined : parsePublicKey(publicText);
  const derived = privateKey ? createPublicKey(privateKey) : undefined;
  const effectivePublic = publicKey ?? derived!;
  checkKeyFitsAlgorithm(algorithm, effectivePublic);
  if (publicKey && derived && !sameJwk(publicKey, derived)) {
    throw new InvalidInputError('the public key does not belong to the private key');
  }
  return Object.freeze({
    algorithm,
    signingKey: privateKey ? await toCryptoKey(privateKey, algorithm) : undefined,
    verificationKey: await toCryptoKey(effectivePublic, algorithm),
  });
}

/** Options of `signAgentToken`. */
export interface SignAgentTokenOptions {
  /** The attempt's log path relative to the store root, exactly as the agent will be asked for it. */
  relativePath: string;
  /** Default 30; at most 3600. Negative values mint an already expired token (for tests). */
  expiresInSeconds?: number;
  /** Default `tasklog-agent`. */
  audience?: string;
  /** `iss` claim; omitted when not given. */
  issuer?: string;
}

/**
 * Returns a compact JWS with claims `path`, `aud`, `iat`, `nbf`, `exp` (and `iss`). Throws
 * InvalidInputError when the keys can only verify or an option is out of range.
 */
export async function signAgentToken(
  keys: AgentTokenKeys,
  options: SignAgentTokenOptions,
): Promise<string> {
  const { relativePath, expiresInSeconds = 30, audience = AGENT_TOKEN_AUDIENCE, issuer } = options;
  if (!keys.signingKey) {
    throw new InvalidInputError(
      'these agent token keys hold no private key, so they can only verify',
    );
  }
  requirePath(relativePath);
  if (
    !Number.isSafeInteger(expiresInSeconds) ||
    expiresInSeconds > MAX_AGENT_TOKEN_LIFETIME_SECONDS
  ) {
    throw new InvalidInputError(
      `expiresInSeconds must be an integer <= ${MAX_AGENT_TOKEN_LIFETIME_SECONDS}, got ${String(expiresInSeconds)}`,
    );
  }
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ path: relativePath })
    .setProtectedHeader({ alg: keys.algorithm, typ: TOKEN_TYPE })
    .setAudience(audience)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + expiresInSeconds);
  if (issuer !== undefined) jwt.setIssuer(issuer);
  return jwt.sign(keys.signingKey);
}

/** Options of `verifyAgentToken`. */
export interface VerifyAgentTokenOptions {
  /** The path the agent was asked for; the token's `path` must equal it exactly. */
  relativePath: string;
  /** Default `tasklog-agent`. */
  audience?: string;
  /** When given, `iss` must equal it. */
  issuer?: string;
  /** Allowed clock skew between proxy and agent; default 5. */
  clockToleranceSeconds?: number;
}

/** The verified claims of an agent token. */
export interface AgentTokenClaims extends JWTPayload {
  /** The attempt's log path relative to the store root: the only log the token opens. */
  path: string;
  aud: string | string[];
  iat: number;
  nbf: number;
  exp: number;
}

/**
 * Checks `token` and that it names `relativePath`. Throws UnauthorizedError when the token is
 * missing, garbled, forged, expired, not yet valid, for another audience or issuer, or signed
 * with any algorithm but `keys.algorithm` (so `alg: none` and HS256-with-the-public-key are
 * refused). Throws ForbiddenError when the token is valid but names another attempt.
 */
export async function verifyAgentToken(
  keys: AgentTokenKeys,
  token: string | undefined,
  options: VerifyAgentTokenOptions,
): Promise<AgentTokenClaims> {
  const {
    relativePath,
    audience = AGENT_TOKEN_AUDIENCE,
    issuer,
    clockToleranceSeconds = 5,
  } = options;
  requirePath(relativePath);
  // Checked here because jose's TypeError for it would otherwise read as a bad token.
  if (!Number.isFinite(clockToleranceSeconds) || clockToleranceSeconds < 0) {
    throw new InvalidInputError(
      `clockToleranceSeconds must be a number >= 0, got ${String(clockToleranceSeconds)}`,
    );
  }
  if (typeof token !== 'string' || token.length === 0) {
    throw new UnauthorizedError('an agent token is required');
  }
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new UnauthorizedError('the agent token is not valid');
  }
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keys.verificationKey, {
      algorithms: [keys.algorithm],
      typ: TOKEN_TYPE,
      audience,
      ...(issuer === undefined ? {} : { issuer }),
      clockTolerance: clockToleranceSeconds,
      maxTokenAge: MAX_AGENT_TOKEN_LIFETIME_SECONDS,
      requiredClaims: ['exp', 'iat', 'nbf', 'path'],
    }));
  } catch (err) {
    // Every failure here is the token's fault (keys were checked at load); the message stays
    // generic so a client learns nothing about which check failed.
    throw new UnauthorizedError('the agent token is not valid', { cause: err });
  }
  if (typeof payload.path !== 'string') {
    throw new UnauthorizedError('the agent token is not valid: its path claim is not a string');
  }
  // Byte-for-byte: no prefix match, no normalisation. `a/attempt=1.log` must not open
  // `a/attempt=1.log.extra`, and `a/./b` is not `a/b`.
  if (payload.path !== relativePath) {
    throw new ForbiddenError('the agent token was issued for another attempt');
  }
  return payload as AgentTokenClaims;
}

function requirePath(relativePath: unknown): asserts relativePath is string {
  if (typeof relativePath !== 'string' || relativePath.length === 0) {
    throw new InvalidInputError('relativePath must be a non-empty string');
  }
}

async function material(
  name: string,
  inline: string | undefined,
  file: string | undefined,
): Promise<string | undefined> {
  if (inline !== undefined && file !== undefined) {
    throw new InvalidInputError(`give the ${name} inline or as a file, not both`);
  }
  if (file === undefined) return inline;
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidInputError(`cannot read the ${name} file ${file}`, { cause: err });
  }
}

// Secret files usually end with the newline an editor or `echo` adds; the same secret given
// inline through an environment variable does not have it.
function stripLineBreak(text: string): string {
  return text.replace(/\r?\n$/, '');
}

function parseJwk(text: string, name: string): JsonWebKey | undefined {
  const trimmed = text.trim();
  if (!trimmed.startsWith('{')) return undefined;
  try {
    return JSON.parse(trimmed) as JsonWebKey;
  } catch (err) {
    throw new InvalidInputError(`the ${name} looks like a JWK but is not valid JSON`, {
      cause: err,
    });
  }
}

function parsePrivateKey(text: string): KeyObject {
  const jwk = parseJwk(text, 'private key');
  try {
    return jwk ? createPrivateKey({ key: jwk, format: 'jwk' }) : createPrivateKey(text);
  } catch (err) {
    throw new InvalidInputError('the private key is not a valid PEM or JWK private key', {
      cause: err,
    });
  }
}

function parsePublicKey(text: string): KeyObject {
  const jwk = parseJwk(text, 'public key');
  // createPublicKey would happily derive a public key from a private one; an agent given a
  // private key by mistake would then hold what lets it mint tokens for every attempt.
  if (jwk ? 'd' in jwk : /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    throw new InvalidInputError(
      'the public key is a private key; agents must hold only the public key',
    );
  }
  try {
    return jwk ? createPublicKey({ key: jwk, format: 'jwk' }) : createPublicKey(text);
  } catch (err) {
    throw new InvalidInputError('the public key is not a valid PEM or JWK public key', {
      cause: err,
    });
  }
}

function checkKeyFitsAlgorithm(algorithm: 'EdDSA' | 'ES256', key: KeyObject): void {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const fits = algorithm === 'EdDSA' ? type === 'ed25519' : type === 'ec' && curve === 'prime256v1';
  if (!fits) {
    const what = type === 'ec' ? `an EC ${curve} key` : `a ${type} key`;
    throw new InvalidInputError(
      `${algorithm} needs ${algorithm === 'EdDSA' ? 'an Ed25519' : 'a P-256'} key, got ${what}`,
    );
  }
}

function sameJwk(a: KeyObject, b: KeyObject): boolean {
  const x = a.export({ format: 'jwk' });
  const y = b.export({ format: 'jwk' });
  return x.kty === y.kty && x.crv === y.crv && x.x === y.x && x.y === y.y;
}

// Imported into WebCrypto at load, so a key WebCrypto refuses fails at startup rather than on
// the first request (Node 20 has no KeyObject.toCryptoKey; jose would convert via JWK lazily).
async function toCryptoKey(key: KeyObject, algorithm: 'EdDSA' | 'ES256'): Promise<CryptoKey> {
  const imported = await importJWK(key.export({ format: 'jwk' }), algorithm);
  return imported as CryptoKey;
}
