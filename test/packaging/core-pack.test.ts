/**
 * @tasklog/core as a user gets it: `npm pack`, then `npm install <tarball>` into an empty folder
 * with npm alone. The cloud SDKs are optional peer dependencies: none may be installed with the
 * package, and a backend used without its SDK must say which package to install.
 *
 * Needs the npm registry (for the package's four dependencies and, in the last test, the S3
 * SDK); the installs take a while, hence the long timeouts.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CORE = join(ROOT, 'packages', 'core');
const TSC = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = promisify(execFile);

/** What @tasklog/core may bring along: its `dependencies`, nothing else. */
const DEPENDENCIES = ['jose', 'kysely', 'smol-toml', 'zod'];
/** Optional peer dependencies (SDKs, catalog drivers, the test suite's runners). */
const OPTIONAL = [
  '@aws-sdk',
  '@google-cloud',
  '@elastic',
  'google-auth-library',
  'pg',
  'better-sqlite3',
  'vitest',
  'fast-check',
];
const SUBPATHS = ['local', 's3', 'gcs', 'cloudwatch', 'elasticsearch', 'cloud-logging'];

/**
 * The environment of the npm and node children: no `npm_config_*` a pnpm parent set, and AWS
 * credentials that are dummies, so the SDK never looks for a profile or the instance metadata.
 */
const env: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))),
  AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'example-secret',
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_CONFIG_FILE: '/nonexistent/aws-config',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
  AWS_PROFILE: undefined,
};

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run('npm', [...args, '--no-audit', '--no-fund'], {
    cwd,
    env,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** Runs an ES module script in the app folder and returns what it printed as JSON. */
async function inApp(script: string): Promise<unknown> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
    cwd: app,
    env,
  });
  return JSON.parse(stdout);
}

/** Opens `s3://bucket/x` with openStore and stats an attempt; prints how that failed. */
const STAT_S3 = `
import { attemptKey, openStore } from '@tasklog/core';
const store = await openStore('s3://bucket/x', {
  s3: { endpoint: 'http://127.0.0.1:9', region: 'us-east-1', max_attempts: 1 },
});
const key = attemptKey({ dagId: 'dag', runId: 'run', taskId: 'task', tryNumber: 1 });
try {
  await store.stat(key);
  console.log(JSON.stringify({ resolved: true }));
} catch (err) {
  console.log(JSON.stringify({ name: err.name, message: err.message, cause: err.cause?.code ?? null }));
}`;

let work: string;
let app: string;
let packed: string[];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tasklog-pack-'));
  await run(process.execPath, [TSC, '--build', CORE], { cwd: ROOT });
  const [pack] = JSON.parse(await npm(['pack', '--json', '--pack-destination', work], CORE)) as {
    filename: string;
    files: { path: string }[];
  }[];
  packed = pack!.files.map((f) => f.path);
  app = join(work, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), '{"type":"module"}\n');
  await npm(['install', join(work, pack!.filename)], app);
}, 600_000);

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('the @tasklog/core tarball installed with npm', () => {
  it('declares only registry versions: no workspace: protocol', async () => {
    const text = await readFile(join(app, 'node_modules/@tasklog/core/package.json'), 'utf8');
    expect(text).not.toContain('workspace:');
    expect(Object.keys(JSON.parse(text).dependencies).sort()).toEqual(DEPENDENCIES);
  });

  it('ships no compiled file whose source is gone (a stale dist/)', () => {
    const compiled = packed.filter((p) => p.startsWith('dist/') && p.endsWith('.js'));
    expect(compiled).toContain('dist/index.js');
    const stale = compiled.filter(
      (p) => !existsSync(join(CORE, 'src', p.slice('dist/'.length).replace(/\.js$/, '.ts'))),
    );
    // If this fails on a developer's machine: rm -rf packages/core/dist && tsc --build.
    expect(stale).toEqual([]);
  });

  it('installs its dependencies and none of the optional SDKs', () => {
    const modules = join(app, 'node_modules');
    for (const dep of DEPENDENCIES) expect(existsSync(join(modules, dep)), dep).toBe(true);
    for (const sdk of OPTIONAL) expect(existsSync(join(modules, sdk)), sdk).toBe(false);
  });

  it('loads by package name, every store subpath too, without any SDK', async () => {
    const loaded = await inApp(`
      const core = await import('@tasklog/core');
      const stores = {};
      for (const name of ${JSON.stringify(SUBPATHS)}) {
        stores[name] = Object.keys(await import('@tasklog/core/stores/' + name)).sort();
      }
      console.log(JSON.stringify({
        openStore: typeof core.openStore,
        schemes: core.STORE_SCHEMES,
        stores,
      }));`);
    expect(loaded).toMatchObject({
      openStore: 'function',
      schemes: expect.arrayContaining(['file:', 's3:', 'gs:', 'cloudwatch:']),
      stores: {
        local: ['LocalStore'],
        s3: ['S3Store', 's3Settings'],
        gcs: ['GcsStore', 'gcsSettings'],
        cloudwatch: ['CloudWatchStore', 'cloudwatchSettings'],
        elasticsearch: expect.arrayContaining(['ElasticsearchStore']),
        'cloud-logging': expect.arrayContaining(['CloudLoggingStore']),
      },
    });
  });

  it('names vitest when the testing entry point is imported without it', async () => {
    const failed = await inApp(`
      try {
        await import('@tasklog/core/testing');
        console.log(JSON.stringify({ loaded: true }));
      } catch (err) {
        console.log(JSON.stringify({ code: err.code, message: err.message }));
      }`);
    expect(failed).toMatchObject({
      code: 'ERR_MODULE_NOT_FOUND',
      message: expect.stringContaining("'vitest'"),
    });
  });

  it('reports BackendUnavailableError naming @aws-sdk/client-s3 when S3 is used without it', async () => {
    expect(await inApp(STAT_S3)).toEqual({
      name: 'BackendUnavailableError',
      message: expect.stringContaining('npm install @aws-sdk/client-s3'),
      cause: 'ERR_MODULE_NOT_FOUND',
    });
  });

  it('finds @aws-sdk/client-s3 once it is installed: the error is the unreachable endpoint', async () => {
    const core = JSON.parse(await readFile(join(CORE, 'package.json'), 'utf8'));
    const range = core.peerDependencies['@aws-sdk/client-s3'] as string;
    await npm(['install', `@aws-sdk/client-s3@${range}`], app);
    const failed = (await inApp(STAT_S3)) as { message: string; cause: string | null };
    expect(failed.message).not.toContain('not installed');
    expect(failed.cause).not.toBe('ERR_MODULE_NOT_FOUND');
    expect(failed).toMatchObject({ name: 'BackendUnavailableError', cause: 'ECONNREFUSED' });
  }, 600_000);
});
