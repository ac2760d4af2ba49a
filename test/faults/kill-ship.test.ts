import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type AttemptKey, attemptKey, openCatalog, PathTemplate } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestStored } from '../../packages/core/src/hashing.js';
import { LocalStore } from '../../packages/core/src/stores/local/store.js';
import { CLI, runCli } from '../support/cli.js';
import { writeTestLog } from '../support/logs.js';
import { type S3rverFixture, startS3rver } from '../support/s3rver.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';

/**
 * `tasklog ship` (one-pass upload) and `tasklog ship --follow` of a finished log (chunks, then the
 * writer's finish) are SIGKILLed at evenly spread moments of an uninterrupted run's duration, then
 * run again: the archive must hold exactly the log, the catalog must say so, and nothing may be
 * left behind — no chunk or temp file, no open multipart upload, no journal, no lock.
 */
const KILLS = 6;
const LOG_BYTES = 16 * 1024 * 1024;
const template = new PathTemplate();

let s3: S3rverFixture;
beforeAll(async () => {
  // With the multipart APIs s3rver lacks (ListMultipartUploads, AbortMultipartUpload, ListParts).
  s3 = await startS3rver('kill-ship', { multipartApis: true });
});
afterAll(async () => {
  await s3?.close();
});

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

/** Runs the CLI and SIGKILLs it `afterMs` after start; resolves with how long it ran. */
async function runKilled(
  args: string[],
  env: NodeJS.ProcessEnv,
  afterMs?: number,
): Promise<number> {
  const started = Date.now();
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: 'ignore' });
  const timer =
    afterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), afterMs);
  await once(child, 'exit');
  clearTimeout(timer);
  return Date.now() - started;
}

const backends = [
  {
    name: 'the local store',
    env: (home: string) => ({ TASKLOG__STORE__URL: `file://${join(home, 'archive')}` }),
    open: (home: string) => new LocalStore({ root: join(home, 'archive') }),
    leftovers: async (home: string, keys: AttemptKey[]) => {
      const expected = keys.map((k) => template.render(k)).sort();
      expect((await filesUnder(join(home, 'archive'))).sort()).toEqual(expected);
    },
  },
  {
    name: 'S3',
    env: (home: string) => s3.cliEnv(home.split('/').pop()!),
    open: (home: string) => s3.openStore(home.split('/').pop()!),
    leftovers: async (home: string, keys: AttemptKey[]) => {
      const prefix = `${home.split('/').pop()}/`;
      const expected = keys.map((k) => prefix + template.render(k)).sort();
      expect((await s3.listKeys(prefix)).sort()).toEqual(expected);
      expect(await s3.openUploads()).toEqual([]);
    },
  },
];

describe.each(backends)('killed at evenly spread moments, then run again, on $name', (backend) => {
  for (const mode of ['ship', 'ship --follow'] as const) {
    it(`${mode}: byte-identical, catalog right, no leftovers`, async () => {
      const home = await makeTempDir('kill');
      const env = {
        PATH: process.env.PATH,
        TASKLOG_HOME: home,
        TASKLOG__LOGGING__LEVEL: 'silent',
        ...backend.env(home),
      };
      const store = backend.open(home);
      const args = (file: string) =>
        mode === 'ship' ? ['ship', file] : ['ship', '--follow', file];
      const logOf = async (taskId: string) => {
        const key = attemptKey({ dagId: 'kills', runId: 'manual__1', taskId, tryNumber: 1 });
        const file = join(home, 'logs', template.render(key));
        const digest = await writeTestLog(file, LOG_BYTES, taskId.length);
        await writeFile(`${file}.done`, '');
        return { key, file, digest };
      };
      try {
        // An uninterrupted run measures the span the kills are spread over.
        const calibration = await logOf('calibration');
        const duration = await runKilled(args(calibration.file), env);
        const attempts = [calibration];
        for (let k = 1; k <= KILLS; k++) {
          const attempt = await logOf(`kill_${k}`);
          attempts.push(attempt);
          await runKilled(args(attempt.file), env, Math.round((duration * k) / (KILLS + 1)));
          const again = await runCli(args(attempt.file), env);
          expect(again.stderr).toBe('');
          expect(again.code).toBe(0);
        }
        const catalog = await openCatalog(`sqlite://${join(home, 'catalog.db')}`, {
          migrate: 'never',
        });
        try {
          for (const { key, digest } of attempts) {
            expect(await digestStored(store, key)).toEqual(digest);
            expect(await catalog.get(key)).toMatchObject({ state: 'shipped', ...digest });
          }
        } finally {
          await catalog.close();
        }
        await backend.leftovers(
          home,
          attempts.map((a) => a.key),
        );
        expect(await filesUnder(join(home, 'state'))).toEqual([]);
      } finally {
        await store.close();
        await removeTempDir(home);
      }
    }, 300_000);
  }
});
