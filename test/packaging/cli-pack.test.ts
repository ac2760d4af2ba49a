/**
 * tasklog as a user outside a clone gets it: the three packages packed into tarballs
 * (`pnpm pack`, which turns `workspace:*` into the packages' versions), installed globally into
 * a temporary prefix with npm alone (one `npm install -g` of the three), and the `tasklog`
 * command that gives run from there — not from the workspace — on the embedded defaults (a
 * local-folder archive and a SQLite catalog in a temporary TASKLOG_HOME): `--version`, `ship`,
 * `serve` (health and the log through the API) and `fetch`.
 *
 * Packs what the build left in the packages (`pnpm test` builds first; the bundle is not rebuilt
 * here, since other suites run it meanwhile). Needs the npm registry for the dependencies,
 * better-sqlite3's install script builds or downloads its native module: minutes, hence the
 * long timeouts.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PACKAGES = ['core', 'server', 'cli'] as const;
const run = promisify(execFile);

const DAG = 'etl_daily';
const RUN = 'scheduled__2024-01-01T00:00:00+00:00';
const TASK = 'extract';
const REL = `dag_id=${DAG}/run_id=${RUN}/task_id=${TASK}/attempt=1.log`;
const LOG = `${Array.from({ length: 500 }, (_, i) => `[2024-01-01T00:00:00] line ${i} — é ✓`).join('\n')}\n`;

let work: string;
let prefix: string;
let home: string;
let tarballs: string[];
/** No npm_* settings of a pnpm parent, no TASKLOG_* of the developer, the prefix's bin first. */
let env: NodeJS.ProcessEnv;

/** Runs the globally installed `tasklog ARGS` from a folder outside the workspace. */
async function tasklog(args: string[]) {
  try {
    const { stdout, stderr } = await run(join(prefix, 'bin', 'tasklog'), args, {
      cwd: work,
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Starts the installed `tasklog serve --port 0` and resolves with its URL once it serves. */
async function startServe(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(join(prefix, 'bin', 'tasklog'), ['serve', '--port', '0'], {
    cwd: work,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr!.on('data', (b: Buffer) => {
    out += b;
  });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b;
      const m = /on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}`)));
  });
  return { url, child };
}

beforeAll(async () => {
  const bundle = join(ROOT, 'packages/cli/bundle/main.js');
  if (!existsSync(bundle)) throw new Error('build first: npx -y pnpm@12.4.2 build');
  work = await mkdtemp(join(tmpdir(), 'tasklog-cli-pack-'));
  prefix = join(work, 'prefix');
  home = join(work, 'home');
  env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(npm_|TASKLOG)/i.test(k))),
    PATH: [join(prefix, 'bin'), dirname(process.execPath), '/usr/bin', '/bin'].join(':'),
    TASKLOG_HOME: home,
  };
  const out = join(work, 'tarballs');
  const filters = PACKAGES.flatMap((p) => ['--filter', `@tasklog/${p}`]);
  await run('npx', ['-y', 'pnpm@12.4.2', ...filters, 'pack', '--pack-destination', out], {
    cwd: ROOT,
    env,
    maxBuffer: 64 * 1024 * 1024,
  });
  tarballs = (await readdir(out)).sort();
  await run(
    'npm',
    [
      'install',
      '--global',
      '--prefix',
      prefix,
      '--no-audit',
      '--no-fund',
      '--allow-scripts=better-sqlite3,protobufjs',
      ...tarballs.map((t) => join(out, t)),
    ],
    { cwd: work, env, maxBuffer: 64 * 1024 * 1024 },
  );
}, 1_200_000);

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('the tasklog command installed globally from the three tarballs with npm', () => {
  it('packs one tarball per package', () => {
    expect(tarballs).toEqual([
      expect.stringMatching(/^tasklog-cli-\d+\.\d+\.\d+\.tgz$/),
      expect.stringMatching(/^tasklog-core-\d+\.\d+\.\d+\.tgz$/),
      expect.stringMatching(/^tasklog-server-\d+\.\d+\.\d+\.tgz$/),
    ]);
  });

  it('installs packages that depend on registry versions only: no workspace: protocol', async () => {
    const modules = join(prefix, 'lib', 'node_modules', '@tasklog');
    for (const name of PACKAGES) {
      const manifest = JSON.parse(await readFile(join(modules, name, 'package.json'), 'utf8'));
      const source = JSON.parse(
        await readFile(join(ROOT, 'packages', name, 'package.json'), 'utf8'),
      );
      expect(JSON.stringify(manifest.dependencies ?? {})).not.toContain('workspace:');
      for (const sibling of Object.keys(manifest.dependencies ?? {})) {
        if (sibling.startsWith('@tasklog/'))
          expect(manifest.dependencies[sibling]).toBe(source.version);
      }
    }
  });

  it('resolves @tasklog/core and @tasklog/server to the tarballs installed beside it', () => {
    const cli = join(prefix, 'lib', 'node_modules', '@tasklog', 'cli');
    expect(existsSync(join(cli, 'bundle', 'main.js'))).toBe(true);
    expect(existsSync(join(cli, 'node_modules', '@tasklog'))).toBe(false);
    expect(existsSync(join(cli, 'node_modules', 'better-sqlite3'))).toBe(true);
  });

  it('prints its version', async () => {
    const { version } = JSON.parse(await readFile(join(ROOT, 'packages/cli/package.json'), 'utf8'));
    const got = await tasklog(['--version']);
    expect({ code: got.code, stdout: got.stdout.trim() }).toEqual({ code: 0, stdout: version });
  });

  describe('on the embedded defaults', () => {
    let server: { url: string; child: ChildProcess } | undefined;

    beforeAll(async () => {
      const file = join(home, 'logs', ...REL.split('/'));
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, LOG);
    });

    afterAll(() => {
      server?.child.kill('SIGKILL');
    });

    it('ships the log into the local-folder archive and records it in the SQLite catalog', async () => {
      const got = await tasklog(['ship', join(home, 'logs'), '--json']);
      expect(got.code).toBe(0);
      expect(JSON.parse(got.stdout)).toMatchObject({
        shipped: [{ outcome: 'shipped', size: Buffer.byteLength(LOG), relativePath: REL }],
      });
      expect(await readFile(join(home, 'archive', ...REL.split('/')), 'utf8')).toBe(LOG);
      expect(existsSync(join(home, 'catalog.db'))).toBe(true);
    });

    it('serves it: /health answers and the log comes through the API', async () => {
      server = await startServe();
      expect((await fetch(`${server.url}/health`)).status).toBe(200);
      const path = `/api/v1/dags/${DAG}/runs/${encodeURIComponent(RUN)}/tasks/${TASK}/attempts/1/log`;
      const res = await fetch(`${server.url}${path}`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(LOG);
      const listed = await fetch(`${server.url}/api/v1/attempts?dagId=${DAG}`);
      expect(JSON.stringify(await listed.json())).toContain(TASK);
    });

    it('fetches the attempt through the server and straight from the store', async () => {
      expect(server).toBeDefined();
      const viaServer = await tasklog(['fetch', DAG, RUN, TASK, '--server', server!.url]);
      expect({ code: viaServer.code, stdout: viaServer.stdout }).toEqual({ code: 0, stdout: LOG });
      const viaStore = await tasklog(['fetch', DAG, RUN, TASK, '--try', '1']);
      expect({ code: viaStore.code, stdout: viaStore.stdout }).toEqual({ code: 0, stdout: LOG });
    });

    it('stops on SIGTERM with exit code 0', async () => {
      expect(server).toBeDefined();
      server!.child.kill('SIGTERM');
      const [code] = (await once(server!.child, 'exit')) as [number | null];
      expect(code).toBe(0);
      server = undefined;
    });
  });
});
