/**
 * The examples of docs/LIBRARY.md, run as a user runs them (`node --import tsx examples/x.ts`,
 * importing the built @tasklog/core by package name) against `file://` stores in temp folders.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { attemptKey, openStore, PathTemplate } from '@tasklog/core';
import { randomLogBytes, readAll } from '@tasklog/core/testing';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = promisify(execFile);

interface Result {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `examples/<name>` to completion with `args`, the environment plus `env`. */
async function example(name: string, args: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return collect(start(name, args, env));
}

/** Children still running when a test ends (it failed half-way) are killed. */
const running = new Set<ChildProcess>();

function start(name: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join('examples', name), ...args], {
    cwd: ROOT,
    // TMPDIR: what an example makes in its default temp folder goes when the test's folder goes.
    env: { ...process.env, TMPDIR: dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

async function collect(child: ChildProcess): Promise<Result> {
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout: Buffer.concat(out), stderr };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const template = new PathTemplate();
const key = attemptKey({
  dagId: 'docs_dag',
  runId: 'scheduled__2024-01-01T00:00:00+00:00',
  taskId: 'extract',
  mapIndex: 2,
  tryNumber: 3,
});

/** The attempt write-masked.ts writes. */
const maskedKey = attemptKey({
  dagId: 'example_dag',
  runId: 'manual__2024-05-01',
  taskId: 'masked',
  tryNumber: 1,
});

let dir: string;
let storeUrl: string;
beforeAll(async () => {
  // The examples import the package as published: its dist/, not the sources vitest aliases.
  await run(process.execPath, [TSC, '--build', 'packages/core'], { cwd: ROOT });
}, 300_000);
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tasklog-examples-'));
  storeUrl = pathToFileURL(join(dir, 'archive')).href;
});
afterEach(async () => {
  for (const child of running) child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** Writes a worker's log (the Airflow layout below `base`) and returns its path. */
async function workerLog(base: string, content: Uint8Array): Promise<string> {
  const file = join(base, template.render(key));
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, content);
  return file;
}

/** What the example's store holds for `key`, with its stat. */
async function archived() {
  const store = await openStore(storeUrl);
  try {
    return { stat: await store.stat(key), bytes: await readAll(store, key) };
  } finally {
    await store.close();
  }
}

describe('examples', () => {
  it('type-check against the published types', async () => {
    await run(process.execPath, [TSC, '-p', 'examples'], { cwd: ROOT });
  });

  describe('read-attempt.ts', () => {
    const keyArgs = ['--dag', key.dagId, '--run', key.runId, '--task', key.taskId];
    const content = randomLogBytes(100_000, 7);

    beforeEach(async () => {
      const store = await openStore(storeUrl);
      const writer = await store.openWriter(key);
      await writer.append(content);
      await writer.finish({ size: content.length, sha256: sha256(content) });
      await store.close();
    });

    it('writes the log to stdout byte for byte', async () => {
      const args = [...keyArgs, '--map-index', '2', '--try', '3', '--store', storeUrl];
      const result = await example('read-attempt.ts', args);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.equals(content)).toBe(true);
    });

    it('starts at --offset, inside a multi-byte character if asked', async () => {
      const offset = content.indexOf(Buffer.from('€')) + 1;
      const args = [...keyArgs, '--map-index', '2', '--try', '3', '--offset', String(offset)];
      const result = await example('read-attempt.ts', args, { TASKLOG_STORE_URL: storeUrl });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.equals(content.subarray(offset))).toBe(true);
    });

    it('exits 1 naming NOT_FOUND for an attempt the store does not hold', async () => {
      const args = [...keyArgs, '--map-index', '2', '--try', '4', '--store', storeUrl];
      const result = await example('read-attempt.ts', args);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('NOT_FOUND');
      expect(result.stdout.length).toBe(0);
    });

    it('runs without arguments on a demo store', async () => {
      const result = await example('read-attempt.ts');
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.toString()).toContain('starting\n');
    });
  });

  describe('ship-finished.ts', () => {
    it('ships the log: the store holds it complete with its sha256, the catalog knows it', async () => {
      const base = join(dir, 'logs');
      const content = randomLogBytes(300_000, 11);
      const file = await workerLog(base, content);
      const args = ['--base', base, '--file', file, '--store', storeUrl];
      args.push('--catalog', `sqlite://${join(dir, 'catalog.db')}`, '--state', join(dir, 'state'));

      const first = await example('ship-finished.ts', args);
      expect(first.code, first.stderr).toBe(0);
      expect(JSON.parse(first.stdout.toString())).toMatchObject({
        key,
        outcome: 'shipped',
        size: content.length,
        sha256: sha256(content),
        uploaded: content.length,
      });
      const { stat, bytes } = await archived();
      expect(stat).toMatchObject({ size: content.length, complete: true });
      expect(sha256(bytes)).toBe(sha256(content));

      // The same log again: the catalog and the store already agree, nothing is sent.
      const again = await example('ship-finished.ts', args);
      expect(again.code, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout.toString())).toMatchObject({ outcome: 'already-shipped' });
    });
  });

  describe('follow-running.ts', () => {
    it('streams a growing log and finishes it when the completion marker appears', async () => {
      const base = join(dir, 'logs');
      const first = Buffer.from('first line é\nsecond line\n');
      const file = await workerLog(base, first);
      const child = start('follow-running.ts', [
        '--base',
        base,
        '--file',
        file,
        '--store',
        storeUrl,
      ]);
      const done = collect(child);
      // Wait until the follow has flushed what the file held, then let the "task" go on.
      await new Promise<void>((resolve) => {
        child.stderr!.on('data', (b: Buffer) => {
          if (b.toString().includes('flushed:')) resolve();
        });
      });
      expect((await archived()).bytes.equals(first)).toBe(true);
      const rest = Buffer.from('third line €\nlast line without a newline');
      await appendFile(file, rest);
      await writeFile(`${file}.done`, '{"state":"success","exitCode":0}\n');

      const result = await done;
      expect(result.code, result.stderr).toBe(0);
      const content = Buffer.concat([first, rest]);
      expect(JSON.parse(result.stdout.toString())).toMatchObject({
        key,
        outcome: 'shipped',
        size: content.length,
        sha256: sha256(content),
      });
      const { stat, bytes } = await archived();
      expect(stat).toMatchObject({ size: content.length, complete: true });
      expect(bytes.equals(content)).toBe(true);
    });

    it('runs without arguments on a demo task', async () => {
      const result = await example('follow-running.ts');
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout.toString())).toMatchObject({ outcome: 'shipped' });
    });
  });

  describe('write-masked.ts', () => {
    it('keeps the secrets of the environment out of the log file', async () => {
      const base = join(dir, 'logs');
      const env = { DB_PASSWORD: 'pw-Xy7-unguessable', SERVICE_API_TOKEN: 'tok_0123456789abcdef' };
      const lines = [
        `login with ${env.DB_PASSWORD} and ${env.SERVICE_API_TOKEN}`,
        `url postgres://airflow:${env.DB_PASSWORD}@db/airflow`,
        'a harmless line',
      ];
      const result = await example('write-masked.ts', ['--base', base, ...lines], env);
      expect(result.code, result.stderr).toBe(0);

      const file = join(base, template.render(maskedKey));
      const log = await readFile(file, 'utf8');
      expect(log).toBe(
        'login with *** and ***\nurl postgres://airflow:***@db/airflow\na harmless line\n',
      );
      const stdout = result.stdout.toString();
      for (const secret of Object.values(env)) expect(stdout).not.toContain(secret);
      expect(stdout).toContain('token: *** (streamed)\n');
      // The completion marker that tells a shipper the log is complete.
      expect(JSON.parse(await readFile(`${file}.done`, 'utf8'))).toMatchObject({
        state: 'success',
        exitCode: 0,
      });
    });

    it('masks its demo secrets without arguments', async () => {
      const result = await example('write-masked.ts', [], { DB_PASSWORD: undefined });
      expect(result.code, result.stderr).toBe(0);
      const stdout = result.stdout.toString();
      expect(stdout).toContain('postgres://airflow:***@db:5432/airflow');
      expect(stdout).not.toContain('correct-horse-battery');
      expect(stdout).not.toContain('runtime-token-0042');
    });
  });

  describe('show-config.ts', () => {
    it('shows each value set with its source, passwords masked, and pings the store', async () => {
      await mkdir(join(dir, 'archive'));
      const env = {
        TASKLOG_HOME: dir,
        TASKLOG_CONFIG: undefined,
        TASKLOG__CATALOG__URL: 'postgres://tasklog:pw-Qz81-unguessable@db:5432/tasklog',
      };
      const result = await example('show-config.ts', ['--store', storeUrl], env);
      expect(result.code, result.stderr).toBe(0);
      const stdout = result.stdout.toString();
      expect(stdout).toContain(`store.url = "${storeUrl}"  (flag --store)`);
      expect(stdout).toContain(
        'catalog.url = "postgres://tasklog:***@db:5432/tasklog"  (env TASKLOG__CATALOG__URL)',
      );
      expect(stdout).not.toContain('pw-Qz81-unguessable');
      expect(stdout).toContain(`store ${storeUrl} answers`);
    });

    it('exits 2 listing every invalid key with where it came from', async () => {
      const env = {
        TASKLOG_HOME: dir,
        TASKLOG_CONFIG: undefined,
        TASKLOG__SERVER__PORT: 'eighty',
        TASKLOG__STORE__URL: 'ftp://example.com/logs',
      };
      const result = await example('show-config.ts', [], env);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('server.port (from env TASKLOG__SERVER__PORT)');
      expect(result.stderr).toContain('store.url (from env TASKLOG__STORE__URL)');
    });
  });
});

describe('docs/LIBRARY.md', () => {
  it('quotes every example verbatim', async () => {
    const doc = await readFile(join(ROOT, 'docs/LIBRARY.md'), 'utf8');
    // A quoted excerpt is a ```ts block whose first line names its file: `// examples/x.ts`.
    // Indentation is not compared: the formatter dedents an excerpt taken from inside a block.
    const dedent = (text: string) => text.replace(/^[ \t]+/gm, '');
    const blocks = [...doc.matchAll(/```ts\n\/\/ (examples\/[\w.-]+)\n([\s\S]*?)```/g)];
    expect(blocks.length).toBeGreaterThan(5);
    for (const [, file, excerpt] of blocks) {
      const source = dedent(await readFile(join(ROOT, file!), 'utf8'));
      expect(source, `excerpt of ${file}`).toContain(dedent(excerpt!));
    }
  });
});
