import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homeLogFile, runCli, runCliDigest, startServe } from '../support/cli.js';
import { digestRange, writeTestLog } from '../support/logs.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';

const DAG = 'etl_daily';
const RUN = 'scheduled__2024-01-01T00:00:00+00:00';
const TASK = 'extract';
const REL = `dag_id=${DAG}/run_id=${RUN}/task_id=${TASK}/attempt=1.log`;
const SIZE = 50 * 1024 * 1024;

describe('ship → serve → fetch on the embedded default (local archive + SQLite catalog)', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let file: string;
  let expected: { size: number; sha256: string };
  let server: Awaited<ReturnType<typeof startServe>>;

  beforeAll(async () => {
    home = await makeTempDir('e2e');
    env = { PATH: process.env.PATH, TASKLOG_HOME: home };
    file = homeLogFile(home, REL);
    expected = await writeTestLog(file, SIZE, 42);
    const shipped = await runCli(['ship', join(home, 'logs'), '--json'], env);
    expect(shipped.stderr).toBe('');
    expect(shipped.code).toBe(0);
    server = await startServe([], env);
  });

  afterAll(async () => {
    if (server) expect(await server.stop()).toBe(0);
    await removeTempDir(home);
  });

  it('archives the log byte for byte at Airflow’s relative path', async () => {
    const archived = join(home, 'archive', ...REL.split('/'));
    expect(await digestRange(archived)).toEqual(expected);
  });

  it('fetches the log through the server byte-identical', async () => {
    const got = await runCliDigest(['fetch', DAG, RUN, TASK, '--server', server.url], env);
    expect(got.code).toBe(0);
    expect({ size: got.size, sha256: got.sha256 }).toEqual(expected);
  });

  it('fetches the log straight from the store byte-identical', async () => {
    const got = await runCliDigest(['fetch', DAG, RUN, TASK], env);
    expect(got.code).toBe(0);
    expect({ size: got.size, sha256: got.sha256 }).toEqual(expected);
  });

  it('writes --output FILE byte-identical', async () => {
    const out = join(home, 'fetched.log');
    const got = await runCli(['fetch', DAG, RUN, TASK, '--server', server.url, '-o', out], env);
    expect(got.code).toBe(0);
    expect(await digestRange(out)).toEqual(expected);
  });

  it('returns the exact suffix from --offset, through the server and from the store', async () => {
    for (const offset of [1, 1000, 12_345_677, SIZE - 3]) {
      const suffix = await digestRange(file, offset);
      const viaServer = await runCliDigest(
        ['fetch', DAG, RUN, TASK, '--try', '1', '--offset', String(offset), '--server', server.url],
        env,
      );
      const viaStore = await runCliDigest(
        ['fetch', DAG, RUN, TASK, '--offset', String(offset)],
        env,
      );
      expect({ size: viaServer.size, sha256: viaServer.sha256 }).toEqual(suffix);
      expect({ size: viaStore.size, sha256: viaStore.sha256 }).toEqual(suffix);
    }
  });

  it('treats shipping the same log again as a no-op', async () => {
    const before = await stat(join(home, 'archive', ...REL.split('/')));
    const again = await runCli(['ship', file, '--json'], env);
    expect(again.code).toBe(0);
    const result = JSON.parse(again.stdout.toString()) as {
      shipped: Array<{ outcome: string; uploaded: number }>;
    };
    expect(result.shipped).toMatchObject([{ outcome: 'already-shipped', uploaded: 0 }]);
    const after = await stat(join(home, 'archive', ...REL.split('/')));
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });

  it('exits 1 for an attempt nobody has', async () => {
    const viaServer = await runCli(['fetch', DAG, RUN, 'nope', '--server', server.url], env);
    expect(viaServer.code).toBe(1);
    const viaStore = await runCli(['fetch', DAG, RUN, TASK, '--try', '9'], env);
    expect(viaStore.code).toBe(1);
    expect(viaStore.stderr).toMatch(/not/);
  });

  it('exits 2 for bad input and for an invalid config value, naming key and source', async () => {
    expect((await runCli(['fetch', DAG, '..', TASK], env)).code).toBe(2);
    const bad = await runCli(['config', 'show'], { ...env, TASKLOG__SERVER__PORT: 'eighty' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('server.port');
    expect(bad.stderr).toContain('TASKLOG__SERVER__PORT');
  });

  it('exits 3 when the server cannot be reached', async () => {
    const got = await runCli(['fetch', DAG, RUN, TASK, '--server', 'http://127.0.0.1:9'], env);
    expect(got.code).toBe(3);
    expect(got.stderr).toContain('tasklog serve');
  });
});
