import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startServe } from '../support/cli.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';

const DEMO = ['tasklog_demo', 'manual__2026-01-01T00:00:00+00:00', 'hello'];

describe('tasklog serve with authentication', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    home = await makeTempDir('e2e-auth');
    env = { PATH: process.env.PATH, TASKLOG_HOME: home, TASKLOG__LOGGING__LEVEL: 'warn' };
  });
  afterAll(async () => {
    await removeTempDir(home);
  });

  it('refuses to listen beyond loopback without authentication, and says what to set', async () => {
    const r = await runCli(['serve', '--host', '0.0.0.0', '--port', '0'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('auth.mode');
    expect(r.stderr).toContain('--insecure-no-auth');
  });

  it('serves to a token made by tasklog token create, and refuses fetch without it', async () => {
    const tokensEnv = { ...env, TASKLOG__AUTH__MODE: 'tokens' };
    const created = await runCli(['token', 'create', 'ci', '--dags', 'tasklog_*'], tokensEnv);
    expect(created.code).toBe(0);
    const token = created.stdout.toString().trim();
    expect(token).toMatch(/^tlk_[A-Za-z0-9_-]{43}$/);
    const listed = await runCli(['token', 'list', '--json'], tokensEnv);
    expect(listed.stdout.toString()).not.toContain(token);

    const server = await startServe(['--host', '0.0.0.0', '--demo'], tokensEnv);
    try {
      const url = server.url.replace('0.0.0.0', '127.0.0.1');
      const anonymous = await runCli(['fetch', ...DEMO, '--server', url], tokensEnv);
      expect(anonymous.code).toBe(2);
      expect(anonymous.stderr).toContain('TASKLOG_TOKEN');
      const fetched = await runCli(['fetch', ...DEMO, '--server', url], {
        ...tokensEnv,
        TASKLOG_TOKEN: token,
      });
      expect(fetched.stderr).toBe('');
      expect(fetched.code).toBe(0);
      expect(fetched.stdout.toString()).toContain('{taskinstance.py');
      const viaCmd = await runCli(
        ['fetch', ...DEMO, '--server', url, '--token-cmd', `printf %s ${token}`],
        tokensEnv,
      );
      expect(viaCmd.code).toBe(0);
    } finally {
      await server.stop();
    }
  });
});
