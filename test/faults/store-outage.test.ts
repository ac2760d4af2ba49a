import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { attemptKey, openCatalog, PathTemplate } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestStored } from '../../packages/core/src/hashing.js';
import type { S3Store } from '../../packages/core/src/stores/s3/store.js';
import { type FaultProxy, startFaultProxy } from '../emulators/fault-proxy.js';
import { CLI, startService } from '../support/cli.js';
import { sha256 } from '../support/hash.js';
import { type S3rverFixture, startS3rver } from '../support/s3rver.js';
import { useTasklogHome } from '../support/tasklog-home.js';

const OUTAGE_MS = 60_000;
const template = new PathTemplate();
const run = 'manual__2024-03-01T00:00:00+00:00';
const viaRun = attemptKey({ dagId: 'outage', runId: run, taskId: 'tasklog_run', tryNumber: 1 });
const viaAgent = attemptKey({ dagId: 'outage', runId: run, taskId: 'airflow', tryNumber: 1 });

describe('a 60 s store outage while attempts run and end (S3 behind a failing proxy)', () => {
  const cli = useTasklogHome('outage', {
    TASKLOG__STORE__FLUSH_INTERVAL: '0.5',
    TASKLOG__STORE__FINISH_GRACE: '3',
    TASKLOG__AGENT__TOKEN_SECRET: randomBytes(64).toString('base64'),
    TASKLOG__AGENT__SCAN_INTERVAL: '1',
    TASKLOG__LOGGING__LEVEL: 'warn',
  });
  let s3: S3rverFixture;
  let proxy: FaultProxy;
  let store: S3Store;

  beforeAll(async () => {
    s3 = await startS3rver('outage');
    proxy = await startFaultProxy({
      target: s3.endpoint,
      probability: 0,
      kinds: ['503', 'reset-before'],
    });
    cli.configure(s3.cliEnv('logs', proxy.url));
    store = s3.openStore('logs');
  });

  afterAll(async () => {
    await store?.close();
    await proxy?.close();
    await s3?.close();
  });

  it('tasklog run exits with the task’s code inside the outage, and the agent archives both logs within seconds of the store’s return', async () => {
    const agent = await startService('agent', [], cli.env);
    try {
      // A task run by `tasklog run`: prints a line every 50 ms for 8 s, then exits 3.
      const task =
        'let i=0;const t=setInterval(()=>{console.log("task line "+i+" é€");' +
        'if(++i===160){clearInterval(t);process.exit(3)}},50)';
      const runner = spawn(
        process.execPath,
        [
          CLI,
          'run',
          '--dag',
          viaRun.dagId,
          '--run',
          viaRun.runId,
          '--task',
          viaRun.taskId,
          '--try',
          '1',
          '--',
          process.execPath,
          '-e',
          task,
        ],
        { env: cli.env, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let runnerStderr = '';
      runner.stderr.on('data', (b: Buffer) => {
        runnerStderr += b.toString();
      });
      const runnerExit = once(runner, 'exit') as Promise<[number | null]>;

      // A log written as Airflow's task process writes it, followed by the agent alone.
      const airflowFile = join(cli.dir, 'logs', template.render(viaAgent));
      await mkdir(dirname(airflowFile), { recursive: true });
      const writer = (async () => {
        for (let i = 0; i < 160; i++) {
          await appendFile(
            airflowFile,
            `[2024-03-01T00:00:00] {taskinstance.py:1} INFO - line ${i}\n`,
          );
          await sleep(50);
        }
        await writeFile(`${airflowFile}.done`, '');
      })();

      await sleep(2000);
      proxy.setProbability(1);
      const outageStart = Date.now();

      const [code] = await runnerExit;
      await writer;
      expect(code, runnerStderr).toBe(3);
      // It did not wait for the store: it exited inside the outage.
      expect(Date.now() - outageStart).toBeLessThan(OUTAGE_MS);
      expect(runnerStderr).toContain('store.finish_grace');

      await sleep(OUTAGE_MS - (Date.now() - outageStart));
      proxy.setProbability(0);
      const back = Date.now();

      const catalog = await openCatalog(`sqlite://${join(cli.dir, 'catalog.db')}`, {
        migrate: 'never',
      });
      try {
        for (const key of [viaRun, viaAgent]) {
          const local = await readFile(join(cli.dir, 'logs', template.render(key)));
          for (;;) {
            const record = await catalog.get(key);
            if (record?.state === 'shipped') {
              expect(record).toMatchObject({ size: local.length, sha256: sha256(local) });
              break;
            }
            expect(Date.now() - back).toBeLessThan(30_000);
            await sleep(250);
          }
          expect(await digestStored(store, key)).toEqual({
            size: local.length,
            sha256: sha256(local),
          });
        }
        expect((await catalog.get(viaRun))?.exitCode).toBe(3);
      } finally {
        await catalog.close();
      }
    } finally {
      await agent.stop();
    }
  }, 180_000);
});
