/**
 * The Dockerfile, run without a container engine (there is none where this is developed): its
 * steps are read from the file and carried out as plain commands, each stage's filesystem a
 * folder of a temporary directory. The build context is copied by `.dockerignore`'s rules; the
 * `build` stage's RUN steps install, build and pack with pnpm, the `install` stage's install the
 * tarballs with npm alone; the runtime stage's COPY steps assemble the image's files, and its
 * ENTRYPOINT/CMD and HEALTHCHECK are started with its ENV, as its USER (when the test runs as
 * root), with TASKLOG_HOME and /tmp the only folders it may write.
 *
 * Not exercised here: the `tini` stage (its apt-get would change this machine; ENTRYPOINT's
 * `tini --` is left out when starting), the image's own Node.js and Debian, a real read-only
 * root filesystem (approximated: the runtime user owns nothing else, and the tree is compared
 * before and after) and Docker's HEALTHCHECK scheduling. Needs the npm registry; slow.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, chown, cp, lstat, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  copyContext,
  type Dockerfile,
  execForm,
  expand,
  type Instruction,
  keyValues,
  listTree,
  parseDockerfile,
  type Stage,
} from './dockerfile.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);
const AS_ROOT = process.getuid?.() === 0;

/** What the test learnt about the runtime stage while assembling it. */
interface Image {
  root: string;
  env: Record<string, string>;
  user: string;
  entrypoint: string[];
  cmd: string[];
  healthcheck: Instruction;
  volumes: string[];
}

let work: string;
let dockerfile: Dockerfile;
let image: Image;
const skippedCopies: string[] = [];

/** A stage's filesystem root in the temporary folder. */
const stageRoot = (stage: string) => join(work, 'stages', stage);
/** An absolute path of stage `stage` as a path on this machine. */
const inStage = (stage: string, path: string) => join(stageRoot(stage), path);

/** The host's environment without a pnpm parent's `npm_*` settings: the base image's. */
function baseEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] => e[1] !== undefined && !/^npm_/i.test(e[0]),
    ),
  );
}

/** A stage whose RUN steps install system packages is not run here (it would change the host). */
const runsHere = (stage: Stage) =>
  !stage.instructions.some((i) => i.op === 'RUN' && /\bapt-get\b/.test(i.args));

/** Carries out one stage's steps; returns its final ENV, WORKDIR and what the image needs. */
async function runStage(stage: Stage): Promise<Image> {
  const root = stageRoot(stage.name);
  await mkdir(root, { recursive: true, mode: 0o755 });
  const env = baseEnv();
  let workdir = '/';
  const image: Partial<Image> = { root, volumes: [], cmd: [], entrypoint: [] };
  const mapValue = (value: string) =>
    value
      .split(':')
      .map((part) => (part.startsWith('/') ? inStage(stage.name, part) : part))
      .join(':');
  for (const step of stage.instructions) {
    const here = inStage(stage.name, workdir);
    switch (step.op) {
      case 'WORKDIR':
        workdir = isAbsolute(step.args) ? step.args : join(workdir, step.args);
        await mkdir(inStage(stage.name, workdir), { recursive: true, mode: 0o755 });
        break;
      case 'ENV':
        for (const [key, value] of keyValues(step.args)) env[key] = expand(mapValue(value), env);
        break;
      case 'COPY': {
        const [src = '', dest = ''] = step.args.split(/\s+/);
        const from = step.flags.from;
        if (from !== undefined && !runsHere(dockerfile.stages.find((s) => s.name === from)!)) {
          skippedCopies.push(`${from}:${src}`);
          break;
        }
        const source = from === undefined ? join(work, 'context', src) : inStage(from, src);
        const target = isAbsolute(dest) ? inStage(stage.name, dest) : join(here, dest);
        await mkdir(dirname(target), { recursive: true, mode: 0o755 });
        await cp(source, target, { recursive: true, verbatimSymlinks: true });
        const owner = step.flags.chown?.split(':').map(Number);
        if (owner && AS_ROOT) await chownTree(target, owner[0]!, owner[1] ?? owner[0]!);
        break;
      }
      case 'RUN':
        await run('sh', ['-c', step.args], { cwd: here, env, maxBuffer: 256 * 1024 * 1024 });
        break;
      case 'USER':
        image.user = step.args;
        break;
      case 'VOLUME':
        image.volumes = execForm(step.args);
        break;
      case 'HEALTHCHECK':
        image.healthcheck = step;
        break;
      case 'ENTRYPOINT':
        image.entrypoint = execForm(step.args);
        break;
      case 'CMD':
        image.cmd = execForm(step.args);
        break;
    }
  }
  return { ...(image as Image), env };
}

async function chownTree(path: string, uid: number, gid: number) {
  await chown(path, uid, gid);
  if ((await lstat(path)).isDirectory()) {
    for (const rel of await listTree(path)) await chown(join(path, rel), uid, gid);
  }
}

/** Every path of the image outside the volume and /tmp, with its size and modification time. */
async function imageState(): Promise<string[]> {
  const volume = image.env.TASKLOG_HOME!;
  const tmp = image.env.TMPDIR!;
  const state: string[] = [];
  for (const rel of await listTree(image.root)) {
    const full = join(image.root, rel);
    if (full.startsWith(`${volume}/`) || full.startsWith(`${tmp}/`)) continue;
    const s = await lstat(full);
    state.push(`${rel} ${s.size} ${s.isDirectory() ? '' : s.mtimeMs}`);
  }
  return state;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/** An argument of the image's exec-form commands: its absolute paths are the image's. */
const imageArg = (arg: string) => (arg.startsWith('/') ? inStage('runtime', arg) : arg);

/** Spawns a command in the image with its ENV, as its USER when possible. */
function spawnInImage(argv: string[], extraEnv: Record<string, string> = {}): ChildProcess {
  const [uid, gid] = image.user.split(':').map(Number);
  const [command = '', ...args] = argv;
  return spawn(command, args, {
    cwd: inStage('runtime', '/var/lib/tasklog'),
    env: { ...image.env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(AS_ROOT ? { uid, gid } : {}),
  });
}

async function exitOf(child: ChildProcess): Promise<{ code: number | null; out: string }> {
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b;
  });
  child.stderr!.on('data', (b: Buffer) => {
    out += b;
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, out };
}

/** The image's command (ENTRYPOINT without `tini --`, then `args` or CMD). */
const command = (args?: string[]) => [
  ...image.entrypoint.slice(2).map(imageArg),
  ...(args ?? image.cmd),
];

/** Starts a long-running role and resolves once it prints the URL it serves on. */
async function startRole(args: string[], env: Record<string, string>) {
  const child = spawnInImage(command(args), env);
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += b;
      const m = /on (https?:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (b: Buffer) => {
      out += b;
    });
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}: ${out}`)));
  });
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

const healthcheck = (env: Record<string, string>) =>
  exitOf(spawnInImage(execForm(image.healthcheck.args).map(imageArg), env));

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tasklog-docker-'));
  await chmod(work, 0o755);
  dockerfile = parseDockerfile(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));
  await copyContext(
    ROOT,
    join(work, 'context'),
    await readFile(join(ROOT, '.dockerignore'), 'utf8'),
  );
  let last: Image | undefined;
  for (const stage of dockerfile.stages) if (runsHere(stage)) last = await runStage(stage);
  image = last!;
  // What a tmpfs at /tmp gives the container: an empty, world-writable folder.
  await mkdir(image.env.TMPDIR!, { recursive: true });
  await chmod(image.env.TMPDIR!, 0o1777);
}, 1_800_000);

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('the Dockerfile', () => {
  it('builds every stage from Node.js 20 on Debian slim', () => {
    const bases = dockerfile.stages.map((s) => s.base);
    expect(bases.length).toBeGreaterThanOrEqual(3);
    for (const base of bases) expect(base).toMatch(/^node:20(\.\d+)*-(bookworm-)?slim$/);
  });

  it('builds with pnpm 12.4.2 from the frozen lockfile and packs the three packages', () => {
    const steps = dockerfile.stages[0]!.instructions.filter((i) => i.op === 'RUN');
    const text = steps.map((s) => s.args).join('\n');
    expect(text).toContain('npx -y pnpm@12.4.2 install --frozen-lockfile');
    expect(text).toContain('npx -y pnpm@12.4.2 build');
    for (const name of ['core', 'server', 'cli']) expect(text).toContain(`@tasklog/${name}`);
  });

  it('leaves the build context without node_modules, build output or .git', async () => {
    const files = await listTree(join(work, 'context'));
    expect(files).toContain('pnpm-lock.yaml');
    expect(files.filter((f) => /(^|\/)(node_modules|dist|\.git)(\/|$)/.test(f))).toEqual([]);
  });

  it('installs the image with npm alone: the runtime has no pnpm and no RUN step', async () => {
    const runtime = dockerfile.stages.at(-1)!;
    expect(runtime.instructions.filter((i) => i.op === 'RUN')).toEqual([]);
    const installed = await listTree(inStage('runtime', '/opt/tasklog'));
    expect(installed).toContain('bin/tasklog');
    expect(installed.filter((f) => /(^|\/)pnpm(\/|$)/.test(f))).toEqual([]);
  });

  it('runs as a numeric non-root user, with TASKLOG_HOME on a volume and tini as PID 1', () => {
    expect(image.user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
    expect(image.volumes).toEqual(['/var/lib/tasklog']);
    expect(image.env.TASKLOG_HOME).toBe(inStage('runtime', '/var/lib/tasklog'));
    expect(image.entrypoint.slice(0, 3)).toEqual(['/usr/bin/tini', '--', 'tasklog']);
    expect(skippedCopies).toEqual(['tini:/usr/bin/tini']);
    expect(image.cmd).toEqual(['serve']);
  });

  it('declares a HEALTHCHECK on /health/live', async () => {
    expect(image.healthcheck.flags).toMatchObject({ interval: '30s', timeout: '5s' });
    const script = await readFile(inStage('runtime', '/opt/tasklog/healthcheck.mjs'), 'utf8');
    expect(script).toContain('/health/live');
  });

  it('prints the packaged version', async () => {
    const version = JSON.parse(await readFile(join(ROOT, 'packages/cli/package.json'), 'utf8'))
      .version as string;
    const { code, out } = await exitOf(spawnInImage(command(['--version'])));
    expect({ code, out: out.trim() }).toEqual({ code: 0, out: version });
  });

  it('refuses to serve on every interface without authentication (the default CMD)', async () => {
    const { code, out } = await exitOf(spawnInImage(command()));
    expect(code).toBe(2);
    expect(out).toMatch(/auth/);
  });

  describe('started as the image would start it', () => {
    let before: string[];
    let serverPort: number;
    let agentPort: number;

    beforeAll(async () => {
      before = await imageState();
      serverPort = await freePort();
      agentPort = await freePort();
    });

    it('ships a log, serves it, and passes its HEALTHCHECK; stops on SIGTERM', async () => {
      const home = image.env.TASKLOG_HOME!;
      const rel = 'dag_id=etl/run_id=manual__1/task_id=load/attempt=1.log';
      const log = join(home, 'logs', ...rel.split('/'));
      await mkdir(dirname(log), { recursive: true });
      await writeFile(log, 'one\ntwo\nthree\n');
      if (AS_ROOT) await chownTree(join(home, 'logs'), 10001, 10001);
      const shipped = await exitOf(spawnInImage(command(['ship', join(home, 'logs')])));
      expect(shipped).toMatchObject({ code: 0 });

      // On loopback, so that the test does not listen on every interface of this machine.
      const env = { TASKLOG__SERVER__HOST: '127.0.0.1', TASKLOG__SERVER__PORT: String(serverPort) };
      const serve = await startRole(['serve'], env);
      try {
        expect(await healthcheck(env)).toMatchObject({ code: 0 });
        expect((await fetch(`${serve.url}/health`)).status).toBe(200);
        const res = await fetch(
          `${serve.url}/api/v1/dags/etl/runs/manual__1/tasks/load/attempts/1/log`,
        );
        expect(await res.text()).toBe('one\ntwo\nthree\n');
      } finally {
        expect(await serve.stop()).toBe(0);
      }
      expect(await healthcheck(env)).toMatchObject({ code: 1 });
    });

    it('runs the agent from the same image, its secret from a _cmd, and passes its HEALTHCHECK', async () => {
      const secret = join(image.env.TASKLOG_HOME!, 'agent-secret');
      await writeFile(secret, 'x'.repeat(64), { mode: 0o600 });
      if (AS_ROOT) await chown(secret, 10001, 10001);
      const env = {
        TASKLOG__AGENT__HOST: '127.0.0.1',
        TASKLOG__AGENT__PORT: String(agentPort),
        TASKLOG__AGENT__TOKEN_SECRET_CMD: `cat ${secret}`,
        TASKLOG__SERVER__PORT: String(serverPort),
      };
      const agent = await startRole(['agent'], env);
      try {
        expect(await healthcheck(env)).toMatchObject({ code: 0 });
      } finally {
        expect(await agent.stop()).toBe(0);
      }
    });

    it('wrote nothing outside TASKLOG_HOME and /tmp (a read-only root filesystem)', async () => {
      expect(await imageState()).toEqual(before);
    });
  });
});
