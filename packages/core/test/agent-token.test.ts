import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type AgentTokenKeys,
  ForbiddenError,
  InvalidInputError,
  loadAgentTokenKeys,
  signAgentToken,
  UnauthorizedError,
  verifyAgentToken,
} from '@tasklog/core';
import { errors, exportJWK, exportPKCS8, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTempDir } from './temp-dir-fixture.js';

const PATH = 'dag_id=a/run_id=r/task_id=t/attempt=1.log';
const SECRET_64 = 'k'.repeat(64);

async function pemPair(alg: 'EdDSA' | 'ES256') {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return {
    privateKeyPem: await exportPKCS8(privateKey),
    publicKeyPem: await exportSPKI(publicKey),
  };
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

function claims(path = PATH) {
  const now = Math.floor(Date.now() / 1000);
  return { path, aud: 'tasklog-agent', iat: now, nbf: now, exp: now + 30 };
}

let ed: { privateKeyPem: string; publicKeyPem: string };
let proxyKeys: AgentTokenKeys;
let agentKeys: AgentTokenKeys;

beforeAll(async () => {
  ed = await pemPair('EdDSA');
  proxyKeys = await loadAgentTokenKeys({ algorithm: 'EdDSA', privateKeyPem: ed.privateKeyPem });
  agentKeys = await loadAgentTokenKeys({ algorithm: 'EdDSA', publicKeyPem: ed.publicKeyPem });
});

describe('round trip', () => {
  it('a token signed with an HS512 secret verifies with the same secret', async () => {
    const keys = await loadAgentTokenKeys({ algorithm: 'HS512', secret: SECRET_64 });
    const token = await signAgentToken(keys, { relativePath: PATH });
    const verified = await verifyAgentToken(keys, token, { relativePath: PATH });
    expect(verified.path).toBe(PATH);
    expect(verified.aud).toBe('tasklog-agent');
  });

  it('a token signed with an Ed25519 private key verifies with only the public key', async () => {
    const token = await signAgentToken(proxyKeys, { relativePath: PATH, issuer: 'proxy-1' });
    const verified = await verifyAgentToken(agentKeys, token, {
      relativePath: PATH,
      issuer: 'proxy-1',
    });
    expect(verified.path).toBe(PATH);
    expect(verified.iss).toBe('proxy-1');
  });

  it('a token signed with an ES256 private key verifies with the public key', async () => {
    const pair = await pemPair('ES256');
    const signer = await loadAgentTokenKeys({ algorithm: 'ES256', ...pair });
    const verifier = await loadAgentTokenKeys({
      algorithm: 'ES256',
      publicKeyPem: pair.publicKeyPem,
    });
    const token = await signAgentToken(signer, { relativePath: PATH });
    await expect(verifyAgentToken(verifier, token, { relativePath: PATH })).resolves.toMatchObject({
      path: PATH,
    });
  });

  it('carries exp, iat and nbf, with exp expiresInSeconds after iat', async () => {
    const token = await signAgentToken(proxyKeys, { relativePath: PATH, expiresInSeconds: 120 });
    const verified = await verifyAgentToken(agentKeys, token, { relativePath: PATH });
    expect(verified.nbf).toBe(verified.iat);
    expect(verified.exp - verified.iat).toBe(120);
  });
});

describe('refused as unauthorized', () => {
  it('refuses a missing token', async () => {
    await expect(verifyAgentToken(agentKeys, undefined, { relativePath: PATH })).rejects.toThrow(
      UnauthorizedError,
    );
    await expect(verifyAgentToken(agentKeys, '', { relativePath: PATH })).rejects.toThrow(
      UnauthorizedError,
    );
  });

  it('refuses a garbled token', async () => {
    await expect(verifyAgentToken(agentKeys, 'not.a.jwt', { relativePath: PATH })).rejects.toThrow(
      UnauthorizedError,
    );
  });

  it('refuses an expired token', async () => {
    const token = await signAgentToken(proxyKeys, { relativePath: PATH, expiresInSeconds: -60 });
    await expect(verifyAgentToken(agentKeys, token, { relativePath: PATH })).rejects.toThrow(
      UnauthorizedError,
    );
  });

  it('refuses a token for another audience', async () => {
    const token = await signAgentToken(proxyKeys, { relativePath: PATH, audience: 'someone-else' });
    await expect(verifyAgentToken(agentKeys, token, { relativePath: PATH })).rejects.toThrow(
      UnauthorizedError,
    );
  });

  it('refuses a token from another issuer when an issuer is required', async () => {
    const token = await signAgentToken(proxyKeys, { relativePath: PATH, issuer: 'intruder' });
    await expect(
      verifyAgentToken(agentKeys, token, { relativePath: PATH, issuer: 'proxy-1' }),
    ).rejects.toThrow(UnauthorizedError);
  });

  it('refuses an unsigned token with alg none', async () => {
    const token = `${b64url({ alg: 'none', typ: 'tasklog-agent+jwt' })}.${b64url(claims())}.`;
    const hsKeys = await loadAgentTokenKeys({ algorithm: 'HS512', secret: SECRET_64 });
    for (const keys of [agentKeys, hsKeys]) {
      const err = await rejection(verifyAgentToken(keys, token, { relativePath: PATH }));
      expect(err).toBeInstanceOf(UnauthorizedError);
      expect(err.cause).toBeInstanceOf(errors.JOSEAlgNotAllowed);
    }
  });

  it('refuses an HS256 token keyed with the public key when the agent expects EdDSA', async () => {
    const token = await new SignJWT(claims())
      .setProtectedHeader({ alg: 'HS256', typ: 'tasklog-agent+jwt' })
      .sign(new TextEncoder().encode(ed.publicKeyPem));
    const err = await rejection(verifyAgentToken(agentKeys, token, { relativePath: PATH }));
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err.cause).toBeInstanceOf(errors.JOSEAlgNotAllowed);
  });

  it('refuses an HS256 token when the keys are configured for HS512 with the same secret', async () => {
    const hs256 = await loadAgentTokenKeys({ algorithm: 'HS256', secret: SECRET_64 });
    const hs512 = await loadAgentTokenKeys({ algorithm: 'HS512', secret: SECRET_64 });
    const token = await signAgentToken(hs256, { relativePath: PATH });
    await expect(verifyAgentToken(hs512, token, { relativePath: PATH })).rejects.toThrow(
      UnauthorizedError,
    );
  });

  it('refuses a token whose payload was changed after signing', async () => {
    const token = await signAgentToken(proxyKeys, { relativePath: PATH });
    const [header, , signature] = token.split('.');
    const other = 'dag_id=a/run_id=r/task_id=t/attempt=2.log';
    const tampered = `${header}.${b64url(claims(other))}.${signature}`;
    const err = await rejection(verifyAgentToken(agentKeys, tampered, { relativePath: other }));
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err.cause).toBeInstanceOf(errors.JWSSignatureVerificationFailed);
  });

  it('refuses a token signed by another key pair', async () => {
    const stranger = await loadAgentTokenKeys({
      algorithm: 'EdDSA',
      privateKeyPem: (await pemPair('EdDSA')).privateKeyPem,
    });
    const token = await signAgentToken(stranger, { relativePath: PATH });
    await expect(verifyAgentToken(agentKeys, token, { relativePath: PATH })).rejects.toThrow(
      UnauthorizedError,
    );
  });

  it('refuses a JWT of another type signed with the same key', async () => {
    const hsKeys = await loadAgentTokenKeys({ algorithm: 'HS512', secret: SECRET_64 });
    const token = await new SignJWT(claims())
      .setProtectedHeader({ alg: 'HS512', typ: 'JWT' })
      .sign(new TextEncoder().encode(SECRET_64));
    await expect(verifyAgentToken(hsKeys, token, { relativePath: PATH })).rejects.toThrow(
      UnauthorizedError,
    );
  });
});

describe('refused as forbidden', () => {
  it('refuses a valid token for another attempt', async () => {
    const token = await signAgentToken(proxyKeys, {
      relativePath: 'dag_id=a/run_id=r/task_id=t/attempt=2.log',
    });
    await expect(verifyAgentToken(agentKeys, token, { relativePath: PATH })).rejects.toThrow(
      ForbiddenError,
    );
  });

  it('refuses a token whose path is a prefix of the requested path', async () => {
    const token = await signAgentToken(proxyKeys, { relativePath: PATH });
    await expect(
      verifyAgentToken(agentKeys, token, { relativePath: `${PATH}.extra` }),
    ).rejects.toThrow(ForbiddenError);
  });

  it('refuses a token whose path extends the requested path', async () => {
    const token = await signAgentToken(proxyKeys, { relativePath: `${PATH}.extra` });
    await expect(verifyAgentToken(agentKeys, token, { relativePath: PATH })).rejects.toThrow(
      ForbiddenError,
    );
    await expect(
      verifyAgentToken(agentKeys, token, { relativePath: PATH.slice(0, -4) }),
    ).rejects.toThrow(ForbiddenError);
  });

  it('does not normalise paths before comparing them', async () => {
    const token = await signAgentToken(proxyKeys, { relativePath: PATH });
    for (const variant of [`./${PATH}`, `${PATH}/`, ` ${PATH}`, PATH.replace('/', '//')]) {
      await expect(verifyAgentToken(agentKeys, token, { relativePath: variant })).rejects.toThrow(
        ForbiddenError,
      );
    }
  });
});

describe('loading keys', () => {
  const dir = useTempDir('agent-token', 'block');

  it('refuses an HS256 secret shorter than 32 bytes', async () => {
    await expect(
      loadAgentTokenKeys({ algorithm: 'HS256', secret: 'k'.repeat(31) }),
    ).rejects.toThrow(InvalidInputError);
  });

  it('refuses an HS512 secret shorter than 64 bytes', async () => {
    await expect(
      loadAgentTokenKeys({ algorithm: 'HS512', secret: 'k'.repeat(63) }),
    ).rejects.toThrow(InvalidInputError);
  });

  it('reads a secret from a file, ignoring its trailing line break', async () => {
    const file = join(dir.path, 'secret');
    await writeFile(file, `${SECRET_64}\n`);
    const fromFile = await loadAgentTokenKeys({ algorithm: 'HS512', secretFile: file });
    const inline = await loadAgentTokenKeys({ algorithm: 'HS512', secret: SECRET_64 });
    const token = await signAgentToken(fromFile, { relativePath: PATH });
    await expect(verifyAgentToken(inline, token, { relativePath: PATH })).resolves.toBeDefined();
  });

  it('reads PEM keys from files', async () => {
    const privateKeyFile = join(dir.path, 'agent.key');
    const publicKeyFile = join(dir.path, 'agent.pub');
    await writeFile(privateKeyFile, ed.privateKeyPem);
    await writeFile(publicKeyFile, ed.publicKeyPem);
    const signer = await loadAgentTokenKeys({ algorithm: 'EdDSA', privateKeyFile });
    const verifier = await loadAgentTokenKeys({ algorithm: 'EdDSA', publicKeyFile });
    const token = await signAgentToken(signer, { relativePath: PATH });
    await expect(verifyAgentToken(verifier, token, { relativePath: PATH })).resolves.toBeDefined();
  });

  it('reads keys given as JWK JSON', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const signer = await loadAgentTokenKeys({
      algorithm: 'ES256',
      privateKeyPem: JSON.stringify(await exportJWK(privateKey)),
    });
    const verifier = await loadAgentTokenKeys({
      algorithm: 'ES256',
      publicKeyPem: JSON.stringify(await exportJWK(publicKey)),
    });
    const token = await signAgentToken(signer, { relativePath: PATH });
    await expect(verifyAgentToken(verifier, token, { relativePath: PATH })).resolves.toBeDefined();
  });

  it('refuses to sign with keys that hold only a public key', async () => {
    await expect(signAgentToken(agentKeys, { relativePath: PATH })).rejects.toThrow(
      InvalidInputError,
    );
  });

  it('refuses a private key given where the public key belongs', async () => {
    await expect(
      loadAgentTokenKeys({ algorithm: 'EdDSA', publicKeyPem: ed.privateKeyPem }),
    ).rejects.toThrow(InvalidInputError);
  });

  it('refuses a public key that does not belong to the private key', async () => {
    const other = await pemPair('EdDSA');
    await expect(
      loadAgentTokenKeys({
        algorithm: 'EdDSA',
        privateKeyPem: ed.privateKeyPem,
        publicKeyPem: other.publicKeyPem,
      }),
    ).rejects.toThrow(InvalidInputError);
  });

  it('refuses a key of the wrong type for the algorithm', async () => {
    const p256 = await pemPair('ES256');
    await expect(
      loadAgentTokenKeys({ algorithm: 'EdDSA', publicKeyPem: p256.publicKeyPem }),
    ).rejects.toThrow(InvalidInputError);
    await expect(
      loadAgentTokenKeys({ algorithm: 'ES256', publicKeyPem: ed.publicKeyPem }),
    ).rejects.toThrow(InvalidInputError);
  });

  it('refuses a shared secret for an asymmetric algorithm and a key for an HMAC one', async () => {
    await expect(loadAgentTokenKeys({ algorithm: 'EdDSA', secret: SECRET_64 })).rejects.toThrow(
      InvalidInputError,
    );
    await expect(
      loadAgentTokenKeys({ algorithm: 'HS256', publicKeyPem: ed.publicKeyPem }),
    ).rejects.toThrow(InvalidInputError);
  });

  it('refuses an algorithm outside the allow-list', async () => {
    await expect(
      loadAgentTokenKeys({ algorithm: 'none' as 'HS256', secret: SECRET_64 }),
    ).rejects.toThrow(InvalidInputError);
  });
});
