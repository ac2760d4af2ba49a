import { randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConflictError, InvalidInputError, NotFoundError } from '@tasklog/core';
import { readTokensFile, type StoredToken, tokenDigest } from './authenticator.js';

/**
 * Adds an API token named `name` to the tokens file and returns the token itself — the only
 * time it exists anywhere: the file keeps its sha256. 256 random bits, prefixed `tlk_` so a
 * leaked one is easy to find in code and logs.
 */
export async function createToken(
  file: string,
  grant: { name: string; dags: string[]; admin: boolean },
): Promise<string> {
  if (!/^[A-Za-z0-9._@-]{1,100}$/.test(grant.name)) {
    throw new InvalidInputError('a token name is 1-100 letters, digits, ".", "_", "@" or "-"');
  }
  if (grant.dags.length === 0 && !grant.admin) {
    throw new InvalidInputError(
      'give the DAGs the token may read (--dags "etl_*,reports") or --admin',
    );
  }
  const tokens = await readTokensFile(file);
  if (tokens.some((t) => t.name === grant.name)) {
    throw new ConflictError(
      `a token named ${grant.name} exists; revoke it first or pick another name`,
    );
  }
  const token = `tlk_${randomBytes(32).toString('base64url')}`;
  await writeTokensFile(file, [
    ...tokens,
    { ...grant, sha256: tokenDigest(token), created: new Date().toISOString() },
  ]);
  return token;
}

/** Removes the token named `name`; NotFoundError when there is none. */
export async function revokeToken(file: string, name: string): Promise<void> {
  const tokens = await readTokensFile(file);
  const kept = tokens.filter((t) => t.name !== name);
  if (kept.length === tokens.length) throw new NotFoundError(`no token named ${name}`);
  await writeTokensFile(file, kept);
}

/** Atomic (temp file, rename) and readable by its owner only. */
async function writeTokensFile(file: string, tokens: StoredToken[]): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify({ tokens }, null, 2)}\n`, { mode: 0o600, flush: true });
  await rename(tmp, file);
}
