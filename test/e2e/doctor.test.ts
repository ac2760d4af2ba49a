/**
 * `tasklog doctor` on the embedded default and on broken configurations: what it checks, what
 * it says to fix, and its exit codes (0 all well, 2 a config that does not load, 3 a backend).
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { attemptKey, openCatalog } from '@tasklog/core';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { useTasklogHome } from '../support/tasklog-home.js';

interface Report {
  ok: boolean;
  checks: { name: string; status: string; detail: string; fix?: string }[];
}

async function doctor(env: NodeJS.ProcessEnv): Promise<{ code: number | null; report: Report }> {
  const res = await runCli(['doctor', '--json'], env);
  return { code: res.code, report: JSON.parse(res.stdout.toString()) as Report };
}

function statusOf(report: Report): Record<string, string> {
  return Object.fromEntries(report.checks.map((c) => [c.name, c.status]));
}

const SECRET = randomBytes(64).toString('base64');

describe('tasklog doctor', () => {
  const home = useTasklogHome('doctor', { TASKLOG__AGENT__TOKEN_SECRET: SECRET });

  it('passes on the embedded default once the archive folder exists, and leaves no probe behind', async () => {
    await mkdir(join(home.dir, 'archive'), { recursive: true });
    const { code, report } = await doctor(home.env);
    expect(statusOf(report)).toEqual({
      config: 'ok',
      catalog: 'ok',
      store: 'ok',
      agents: 'ok',
      tokens: 'ok',
    });
    expect(report.ok).toBe(true);
    expect(code).toBe(0);
    // The probe was deleted: nothing under its DAG's folder.
    const left = await readdir(join(home.dir, 'archive'), { recursive: true });
    expect(left.filter((p) => p.includes('tasklog_doctor') && p.endsWith('.log'))).toEqual([]);
  });

  it('prints a readable report without --json', async () => {
    const res = await runCli(['doctor'], home.env);
    expect(res.code).toBe(0);
    expect(res.stdout.toString()).toMatch(/^ok {4}config/m);
    expect(res.stdout.toString()).toMatch(/^ok {4}store {3}.*wrote, read back and deleted/m);
  });

  it('exits 2 for a configuration that does not load, naming the setting', async () => {
    const { code, report } = await doctor({ ...home.env, TASKLOG__SERVER__PORT: 'abc' });
    expect(code).toBe(2);
    expect(report.checks).toEqual([
      expect.objectContaining({
        name: 'config',
        status: 'fail',
        detail: expect.stringContaining('server.port'),
      }),
    ]);
  });

  it('exits 3 when the archive cannot be used, and says what to do', async () => {
    const { code, report } = await doctor({
      ...home.env,
      TASKLOG__STORE__URL: join(home.dir, 'no-such-folder'),
    });
    expect(code).toBe(3);
    const store = report.checks.find((c) => c.name === 'store');
    expect(store?.status).toBe('fail');
    expect(store?.fix).toContain('mkdir');
  });

  it('fails the agents check when a running attempt names an agent that does not answer', async () => {
    const catalog = await openCatalog(`sqlite://${join(home.dir, 'catalog.db')}`);
    try {
      await catalog.upsert(
        attemptKey({ dagId: 'd', runId: 'r', taskId: 't', mapIndex: -1, tryNumber: 1 }),
        {
          relativePath: 'dag_id=d/run_id=r/task_id=t/attempt=1.log',
          state: 'running',
          agentUrl: 'http://127.0.0.1:9/',
          heartbeatAt: new Date(),
        },
      );
    } finally {
      await catalog.close();
    }
    const { code, report } = await doctor(home.env);
    expect(code).toBe(3);
    const agents = report.checks.find((c) => c.name === 'agents');
    expect(agents?.status).toBe('fail');
    expect(agents?.detail).toContain('http://127.0.0.1:9/');
  });

  it('warns without token keys, and fails when the public key is not the private key’s', async () => {
    const withoutKeys = { ...home.env, TASKLOG__AGENT__TOKEN_SECRET: undefined };
    const warned = await doctor(withoutKeys);
    expect(warned.report.checks.find((c) => c.name === 'tokens')?.status).toBe('warn');

    const pem = () =>
      generateKeyPairSync('ed25519', {
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        publicKeyEncoding: { type: 'spki', format: 'pem' },
      });
    const proxy = pem();
    const other = pem();
    const mismatched = await doctor({
      ...withoutKeys,
      TASKLOG__AGENT__TOKEN_ALGORITHM: 'EdDSA',
      TASKLOG__AGENT__TOKEN_PRIVATE_KEY: proxy.privateKey,
      TASKLOG__AGENT__TOKEN_PUBLIC_KEY: other.publicKey,
    });
    const tokens = mismatched.report.checks.find((c) => c.name === 'tokens');
    expect(tokens?.status).toBe('fail');
    expect(tokens?.fix).toContain('matching public key');
  });
});
