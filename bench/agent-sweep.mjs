// bench/agent-sweep: how fast `tasklog agent` takes up new attempts and works through a backlog
// of finished ones, each side by side with a baseline in the same run.
//
//   npx -y pnpm@12.4.2 build && node bench/agent-sweep.mjs [BACKLOG=10000] [PICKUPS=200]
//
// 1. Pick-up: the agent runs with a 60 s scan interval, so only its folder watches can find new
//    attempts. PICKUPS times, a new task folder and its log are created; the latency is from the
//    mkdir to the agent's "following a running attempt" log line (pino's `time`, ms). Baseline:
//    an fs.watch on the run folder in this process, from the same mkdir to its event.
// 2. Backlog: BACKLOG finished logs (1–4 KiB, with completion markers) exist before the agent
//    starts; timed until the catalog records all of them shipped. The agent's open file
//    descriptors are sampled every 100 ms and its peak RSS is read from /proc (VmHWM). Baselines
//    on the same logs: `cp -r` of the folder (the floor: just copying the bytes) and a one-shot
//    `tasklog ship` of the whole folder (one log after another).
// Prints one JSON object. Local store and SQLite catalog in a temp folder; nothing else needed.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { watch } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const BACKLOG = Number(process.argv[2] ?? 10_000);
const PICKUPS = Number(process.argv[3] ?? 200);
const CLI = fileURLToPath(new URL('../packages/cli/bundle/main.js', import.meta.url));
const { openCatalog } = await import('../packages/core/dist/index.js');
const RUN = 'run_id=manual__2026-01-01T00:00:00+00:00';

const percentile = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const summary = (ms) => {
  const s = [...ms].sort((a, b) => a - b);
  return { samples: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s.at(-1) };
};

function environment(home) {
  return {
    PATH: process.env.PATH,
    TASKLOG_HOME: home,
    TASKLOG__AGENT__TOKEN_SECRET: randomBytes(64).toString('base64'),
    TASKLOG__LOGGING__LEVEL: 'info',
  };
}

function startAgent(env) {
  const child = spawn(process.execPath, [CLI, 'agent', '--port', '0'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  let partial = '';
  child.stderr.on('data', (b) => {
    partial += b.toString();
    const parts = partial.split('\n');
    partial = parts.pop();
    for (const l of parts) if (l.startsWith('{')) lines.push(JSON.parse(l));
  });
  const ready = new Promise((resolve) => {
    child.stdout.on('data', (b) => {
      if (b.toString().includes('serving live logs')) resolve();
    });
  });
  return { child, lines, ready };
}

async function stopAgent(agent) {
  agent.child.kill('SIGTERM');
  await once(agent.child, 'exit');
}

async function pickup() {
  const home = await mkdtemp(join(tmpdir(), 'tasklog-bench-pickup-'));
  const runDir = join(home, 'logs', 'dag_id=bench', RUN);
  await mkdir(runDir, { recursive: true });
  const agent = startAgent({ ...environment(home), TASKLOG__AGENT__SCAN_INTERVAL: '60' });
  await agent.ready;
  await sleep(1000); // the first scan has watched the run folder
  const baselineEvents = new Map();
  const watcher = watch(runDir, (_e, name) => {
    if (name && !baselineEvents.has(name)) baselineEvents.set(name, Date.now());
  });
  const tasklog = [];
  const baseline = [];
  for (let i = 0; i < PICKUPS; i++) {
    const task = `task_id=t${i}`;
    const started = Date.now();
    await mkdir(join(runDir, task));
    await writeFile(join(runDir, task, 'attempt=1.log'), `line of t${i}\n`);
    const rel = `dag_id=bench/${RUN}/${task}/attempt=1.log`;
    for (let waited = 0; waited < 5000; waited += 1) {
      const seen = agent.lines.find(
        (l) => l.relativePath === rel && l.msg === 'following a running attempt',
      );
      if (seen) {
        tasklog.push(seen.time - started);
        break;
      }
      await sleep(1);
    }
    baseline.push((baselineEvents.get(task) ?? Number.NaN) - started);
    await sleep(20);
  }
  watcher.close();
  await stopAgent(agent);
  await rm(home, { recursive: true, force: true });
  return { tasklog: summary(tasklog), fsWatchBaseline: summary(baseline) };
}

async function writeBacklog(base) {
  for (let i = 0; i < BACKLOG; i++) {
    const dir = join(base, 'dag_id=bench', RUN, `task_id=t${i}`);
    await mkdir(dir, { recursive: true });
    const file = join(dir, 'attempt=1.log');
    await writeFile(file, randomBytes(512 + (i % 1536)).toString('base64'));
    await writeFile(`${file}.done`, '{"state":"success","exitCode":0}\n');
  }
}

function timed(command, args, env) {
  const started = process.hrtime.bigint();
  execFileSync(command, args, { env, stdio: 'ignore' });
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function backlog() {
  const home = await mkdtemp(join(tmpdir(), 'tasklog-bench-backlog-'));
  const env = environment(home);
  await writeBacklog(join(home, 'logs'));

  const copySeconds = timed('cp', ['-r', join(home, 'logs'), join(home, 'copy')], env);
  const shipHome = join(home, 'oneshot');
  await mkdir(shipHome);
  const shipEnv = { ...environment(shipHome), TASKLOG__CORE__BASE_LOG_FOLDER: join(home, 'logs') };
  const shipSeconds = timed(process.execPath, [CLI, 'ship', join(home, 'logs')], shipEnv);

  const started = process.hrtime.bigint();
  const agent = startAgent(env);
  await agent.ready;
  const catalog = await openCatalog(`sqlite://${join(home, 'catalog.db')}`, { migrate: 'never' });
  let maxFds = 0;
  let shipped = 0;
  let peakRssMb = 0;
  while (shipped < BACKLOG) {
    const fds = (await readdir(`/proc/${agent.child.pid}/fd`).catch(() => [])).length;
    maxFds = Math.max(maxFds, fds);
    const status = await readFile(`/proc/${agent.child.pid}/status`, 'utf8');
    peakRssMb = Number(/VmHWM:\s+(\d+)/.exec(status)[1]) / 1024;
    // Listing 10,000 records costs the agent CPU too: every 500 ms is enough resolution.
    if (Date.now() % 500 < 100) {
      shipped = (await catalog.list({ dagId: 'bench' }, { limit: BACKLOG + 1 })).filter(
        (r) => r.state === 'shipped',
      ).length;
    }
    await sleep(100);
  }
  const agentSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  await catalog.close();
  await stopAgent(agent);
  await rm(home, { recursive: true, force: true });
  return {
    logs: BACKLOG,
    agent: { seconds: agentSeconds, logsPerSecond: BACKLOG / agentSeconds, peakRssMb, maxFds },
    oneShotShip: { seconds: shipSeconds, logsPerSecond: BACKLOG / shipSeconds },
    cpBaseline: { seconds: copySeconds },
  };
}

const result = {
  ...(PICKUPS > 0 ? { pickupMs: await pickup() } : {}),
  ...(BACKLOG > 0 ? { backlog: await backlog() } : {}),
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
process.exit(0);
