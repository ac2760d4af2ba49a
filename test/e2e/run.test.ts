import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { attemptKey, COMPLETION_MARKER_SUFFIX, openCatalog, PathTemplate } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, homeLogFile, runCli } from '../support/cli.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';

const SECRET = 'supersecretvalue';
const STAMP = /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] /;
// The task: lines on both streams, the secret from the environment, then exit code 3.
const SCRIPT = [
  'console.log("out line 1");',
  'console.error("err line 1");',
  'console.log("key is " + process.env.MY_API_KEY);',
  'console.log("out line 2");',
  'process.exitCode = 3;',
].join(' ');

/** `tasklog run` of task `task` of dag d, run r, with `flags`; its command is `node -e script`. */
function runNodeTask(
  task: string,
  script: string,
  env: NodeJS.ProcessEnv,
  flags: string[] = [],
): Promise<CliResult> {
  const command = [process.execPath, '-e', script];
  return runCli(
    ['run', '--dag', 'd', '--run', 'r', '--task', task, ...flags, '--', ...command],
    env,
  );
}

describe('tasklog run on the embedded default (local archive + SQLite catalog)', () => {
  let home: string;
  let env: NodeJS.ProcessEnv;
  let run: CliResult;

  beforeAll(async () => {
    home = await makeTempDir('run');
    env = {
      PATH: process.env.PATH,
      TASKLOG_HOME: home,
      TASKLOG__STORE__FLUSH_INTERVAL: '0.2',
      MY_API_KEY: SECRET,
    };
    run = await runNodeTask('t', SCRIPT, env);
  });

  afterAll(async () => {
    await removeTempDir(home);
  });

  it("exits with the command's exit code", () => {
    expect(run.stderr).not.toContain('tasklog:');
    expect(run.code).toBe(3);
  });

  it("echoes the command's output, masked, to its own stdout and stderr", () => {
    const out = run.stdout.toString();
    expect(out).toContain('out line 1\n');
    expect(out).toContain('key is ***\n');
    expect(out).not.toContain(SECRET);
    expect(run.stderr).toContain('err line 1\n');
  });

  it('archives every line of both streams with a timestamp, the secret masked', async () => {
    const fetched = await runCli(['fetch', 'd', 'r', 't'], env);
    expect(fetched.code).toBe(0);
    const text = fetched.stdout.toString();
    expect(text).not.toContain(SECRET);
    const lines = text.split('\n');
    expect(lines.pop()).toBe('');
    for (const line of lines) expect(line).toMatch(STAMP);
    expect(lines.map((l) => l.replace(STAMP, '')).sort()).toEqual(
      ['err line 1', 'key is ***', 'out line 1', 'out line 2'].sort(),
    );
  });

  it('records the attempt as shipped in the catalog', async () => {
    const catalog = await openCatalog(`sqlite://${join(home, 'catalog.db')}`);
    try {
      const record = await catalog.get(
        attemptKey({ dagId: 'd', runId: 'r', taskId: 't', tryNumber: 1 }),
      );
      expect(record?.state).toBe('shipped');
    } finally {
      await catalog.close();
    }
  });

  it('writes the exit code into the completion marker', async () => {
    const rel = new PathTemplate().render(
      attemptKey({ dagId: 'd', runId: 'r', taskId: 't', tryNumber: 1 }),
    );
    const marker = JSON.parse(
      await readFile(homeLogFile(home, rel) + COMPLETION_MARKER_SUFFIX, 'utf8'),
    );
    expect(marker).toMatchObject({ state: 'failed', exitCode: 3 });
  });

  it('numbers the next run of the same task as the next try', async () => {
    const again = await runNodeTask('t', '', env);
    expect(again.code).toBe(0);
    const fetched = await runCli(['fetch', 'd', 'r', 't', '--try', '2'], env);
    expect(fetched.code).toBe(0);
    expect(fetched.stdout.length).toBe(0);
  });
});

describe('tasklog run masks every secret it can know of (CVE-2024-45784)', () => {
  const secrets = {
    MY_APIKEY: 'apikey-value-1',
    SSH_PASSPHRASE: 'passphrase-value-2',
    AIRFLOW_CONN_DWH: 'postgres://etl:conn%40pass-3@db.internal/dwh',
    TASKLOG__CATALOG__URL: 'postgres://tasklog:cat@log/pass-4@db.invalid/tasklog',
    TASKLOG__AGENT__TOKEN_SECRET_CMD: 'printf agent-secret-from-cmd-5',
  };
  const leaked = [
    'apikey-value-1',
    'passphrase-value-2',
    'conn@pass-3',
    'conn%40pass-3',
    'cat@log/pass-4',
    'agent-secret-from-cmd-5',
  ];

  it('writes none of them to the log nor to its own output', async () => {
    const home = await makeTempDir('run-mask');
    try {
      const env = { PATH: process.env.PATH, TASKLOG_HOME: home, ...secrets };
      const script = `for (const s of ${JSON.stringify(leaked)}) console.log("value: " + s);`;
      const run = await runNodeTask('mask', script, env, ['--try', '1', '--no-ship']);
      expect(run.code).toBe(0);
      const log = await readFile(
        join(
          home,
          'logs',
          new PathTemplate().render(
            attemptKey({ dagId: 'd', runId: 'r', taskId: 'mask', tryNumber: 1 }),
          ),
        ),
        'utf8',
      );
      for (const value of leaked) {
        expect(log, value).not.toContain(value);
        expect(run.stdout.toString(), value).not.toContain(value);
      }
      expect(log.match(/value: \*\*\*/g)).toHaveLength(leaked.length);
    } finally {
      await removeTempDir(home);
    }
  });
});

describe('files tasklog creates', () => {
  it('are 0640 and their folders 0750 (core.umask = 027), whatever the caller’s umask', async () => {
    const home = await makeTempDir('run-modes');
    try {
      const env = { PATH: process.env.PATH, TASKLOG_HOME: home };
      const run = await runNodeTask('modes', '1', env, ['--try', '1']);
      expect(run.code).toBe(0);
      const rel = new PathTemplate().render(
        attemptKey({ dagId: 'd', runId: 'r', taskId: 'modes', tryNumber: 1 }),
      );
      for (const root of ['logs', 'archive']) {
        const file = join(home, root, rel);
        expect((await stat(file)).mode & 0o777, file).toBe(0o640);
        expect((await stat(dirname(file))).mode & 0o777, dirname(file)).toBe(0o750);
      }
    } finally {
      await removeTempDir(home);
    }
  });
});
