import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { attemptKey, PathTemplate } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../packages/core/src/stores/s3/store.js';
import { CLI, homeLogFile, runCli, writeHomeLog } from '../support/cli.js';
import { type S3rverFixture, startS3rver } from '../support/s3rver.js';
import { useTasklogHome } from '../support/tasklog-home.js';

const key = attemptKey({
  dagId: 'etl',
  runId: 'manual__2024-05-01T10:00:00.123456+00:00',
  taskId: 'crunch',
  tryNumber: 1,
});
const rel = new PathTemplate().render(key);

describe('a worker that dies while its attempt runs (S3)', () => {
  const cli = useTasklogHome('dead-worker', { TASKLOG__STORE__FLUSH_INTERVAL: '0.2' });
  let s3: S3rverFixture;
  let store: S3Store;

  beforeAll(async () => {
    s3 = await startS3rver('dead-worker');
    cli.configure(s3.cliEnv('logs'));
    store = S3Store.fromUrl(`s3://${s3.bucket}/logs`, {
      s3: { endpoint: s3.endpoint, force_path_style: true },
    });
  });

  afterAll(async () => {
    await store?.close();
    await s3?.close();
  });

  it('leaves every byte up to the last flush in the store, and tasklog fetch returns them', async () => {
    const file = await writeHomeLog(cli.dir, rel, '');
    const shipper = spawn(process.execPath, [CLI, 'ship', '--follow', file], {
      env: cli.env,
      stdio: 'ignore',
    });

    // The task writes lines for a while; the shipper flushes every 0.2 s. However slowly the
    // shipper starts (a loaded CI machine), the kill comes only after a flush was seen.
    let i = 0;
    const writeLine = () => appendFile(file, `[${i}] ${'payload é€ '.repeat(i % 40)}line ${i++}\n`);
    let flushedBeforeKill = 0;
    for (let waited = 0; flushedBeforeKill === 0 && waited < 600; waited++) {
      await writeLine();
      await new Promise((r) => setTimeout(r, 50));
      flushedBeforeKill = (await store.stat(key))?.size ?? 0;
    }
    for (let more = 0; more < 10; more++) {
      await writeLine();
      await new Promise((r) => setTimeout(r, 25));
    }
    shipper.kill('SIGKILL');
    await once(shipper, 'exit');
    const written = await readFile(file);

    const stat = await store.stat(key);
    expect(stat?.complete).toBe(false);
    expect(flushedBeforeKill).toBeGreaterThan(0);
    expect(stat!.size).toBeGreaterThanOrEqual(flushedBeforeKill);
    expect(stat!.size).toBeLessThanOrEqual(written.length);

    const fetched = await runCli(['fetch', key.dagId, key.runId, key.taskId], cli.env);
    expect(fetched.stderr).toBe('');
    expect(fetched.code).toBe(0);
    expect(fetched.stdout.equals(written.subarray(0, stat!.size))).toBe(true);
  });

  it('is finished byte-identical by a new shipper once the attempt has ended', async () => {
    const file = homeLogFile(cli.dir, rel);
    await writeFile(`${file}.done`, '');
    const resumed = await runCli(['ship', '--follow', file, '--json'], cli.env);
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    const written = await readFile(file);
    expect(await store.stat(key)).toMatchObject({ complete: true, size: written.length });
    const fetched = await runCli(['fetch', key.dagId, key.runId, key.taskId], cli.env);
    expect(fetched.stdout.equals(written)).toBe(true);
  });
});
