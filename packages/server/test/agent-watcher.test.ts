import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { appendFile, mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AttemptKey,
  type AttemptRecord,
  type Catalog,
  COMPLETION_MARKER_SUFFIX,
  LocalStore,
  openCatalog,
  PathTemplate,
  Shipper,
} from '@tasklog/core';
import { Agent } from '@tasklog/server';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { attemptLockPath } from '../../core/src/attempt-lock.js';
import { ShipJournal } from '../../core/src/ship-journal.js';
import { airflowDbRule, type CompletionRule, idleRule } from '../src/agent/completion.js';
import { key, localLogFiles, shipperOptions } from './fixture.js';

const AGENT_URL = 'http://worker-1.example:8795';
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(25);
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function readAll(store: LocalStore, k: AttemptKey): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of store.read(k)) parts.push(Buffer.from(chunk.bytes));
  return Buffer.concat(parts);
}

describe('Agent', () => {
  let dir: string;
  let base: string;
  let store: LocalStore;
  let catalog: Catalog;
  let agent: Agent | undefined;
  const pathTemplate = new PathTemplate();

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tasklog-agent-watch-'));
    base = join(dir, 'logs');
    await mkdir(base, { recursive: true });
    store = new LocalStore({ root: join(dir, 'archive'), pathTemplate });
    catalog = await openCatalog(`sqlite://${join(dir, 'catalog.db')}`, { migrate: 'auto' });
  });
  afterEach(async () => {
    await agent?.close();
    agent = undefined;
    await catalog.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const newShipper = () => new Shipper(shipperOptions(dir, { store, catalog, pathTemplate }));

  function startAgent(
    overrides: {
      idleTimeoutMs?: number;
      scanIntervalMs?: number;
      completion?: CompletionRule;
    } = {},
  ): Agent {
    const shipper = newShipper();
    agent = new Agent({
      shipper,
      catalog,
      pathTemplate,
      baseLogFolder: base,
      agentUrl: AGENT_URL,
      logger: pino({ level: 'silent' }),
      scanIntervalMs: overrides.scanIntervalMs ?? 50,
      completion: overrides.completion,
      heartbeatIntervalMs: 100,
      flushIntervalMs: 50,
      pollIntervalMs: 20,
      idleTimeoutMs: overrides.idleTimeoutMs ?? 60_000,
    });
    agent.start();
    return agent;
  }

  const writeLog = (k: AttemptKey, bytes: Uint8Array) =>
    localLogFiles(base, pathTemplate).write(k, bytes);

  const recordIn = (k: AttemptKey, state: AttemptRecord['state']) => async () => {
    const r = await catalog.get(k);
    return r?.state === state ? r : undefined;
  };

  it('ships a running attempt incrementally and records it running, then shipped', async () => {
    const k = key();
    const first = randomBytes(10_000);
    const file = await writeLog(k, first);
    startAgent();

    const running = await until('running', recordIn(k, 'running'));
    expect(running.agentUrl).toBe(AGENT_URL);
    expect(running.heartbeatAt).toBeInstanceOf(Date);
    // Flushed to the store while the attempt is still running.
    await until('first bytes in the store', async () => {
      const s = await store.stat(k);
      return s && s.size >= first.length ? s : undefined;
    });
    expect((await store.stat(k))?.complete).toBe(false);

    const second = randomBytes(20_000);
    await appendFile(file, second);
    await writeFile(`${file}${COMPLETION_MARKER_SUFFIX}`, '');

    const shipped = await until('shipped', recordIn(k, 'shipped'));
    const all = Buffer.concat([first, second]);
    expect(shipped.sha256).toBe(sha(all));
    expect(sha(await readAll(store, k))).toBe(sha(all));
    await until('follow to end', async () => (agent!.following.length === 0 ? true : undefined));
  });

  it('renews the heartbeat of a followed attempt', async () => {
    const k = key();
    await writeLog(k, Buffer.from('still running\n'));
    startAgent();
    const first = await until('running', recordIn(k, 'running'));
    await until('a later heartbeat', async () => {
      const r = await catalog.get(k);
      return r?.heartbeatAt && r.heartbeatAt > first.heartbeatAt! ? r : undefined;
    });
  });

  it('follows several attempts at once', async () => {
    const keys = [key({ tryNumber: 1 }), key({ tryNumber: 2 }), key({ taskId: 'load' })];
    for (const k of keys) await writeLog(k, randomBytes(1000));
    const a = startAgent();
    await until('all followed', async () => (a.following.length === 3 ? true : undefined));
    for (const k of keys) await until('running', recordIn(k, 'running'));
  });

  it('ships a finished attempt found at start and records it shipped with its exit code', async () => {
    const done = key({ taskId: 'done' });
    const bytes = Buffer.from('finished\n');
    const file = await writeLog(done, bytes);
    await writeFile(`${file}${COMPLETION_MARKER_SUFFIX}`, '{"state":"failed","exitCode":3}\n');
    const live = key({ taskId: 'live' });
    await writeLog(live, Buffer.from('live\n'));
    const a = startAgent();
    const shipped = await until('shipped', recordIn(done, 'shipped'));
    expect(shipped).toMatchObject({ size: bytes.length, sha256: sha(bytes), exitCode: 3 });
    expect(await store.stat(done)).toMatchObject({ size: bytes.length, complete: true });
    await until('running', recordIn(live, 'running'));
    expect(a.following).toEqual([pathTemplate.render(live)]);
  });

  it('finishes the clean-up of a ship killed after it recorded the attempt shipped', async () => {
    const k = key({ taskId: 'killed' });
    const bytes = Buffer.from('shipped, then the agent was killed\n');
    const file = await writeLog(k, bytes);
    await writeFile(`${file}${COMPLETION_MARKER_SUFFIX}`, '');
    await newShipper().shipFile(file);
    // What a SIGKILL between recording and cleaning up leaves: the journal and a dead holder's lock.
    const state = join(dir, 'state');
    const rel = pathTemplate.render(k);
    await mkdir(dirname(ShipJournal.pathOf(state, rel)), { recursive: true });
    await writeFile(
      ShipJournal.pathOf(state, rel),
      JSON.stringify({ version: 2, relativePath: rel, storeUrl: store.url }),
    );
    await mkdir(dirname(attemptLockPath(state, rel)), { recursive: true });
    await writeFile(
      attemptLockPath(state, rel),
      JSON.stringify({ pid: 2 ** 22 + 1, host: hostname() }),
    );
    startAgent();
    await until('journal and lock gone', async () => {
      const left = await readdir(state, { recursive: true, withFileTypes: true });
      return left.some((e) => e.isFile()) ? undefined : true;
    });
    expect(await catalog.get(k)).toMatchObject({ state: 'shipped', sha256: sha(bytes) });
  });

  it('ships a quick attempt, written with its marker between two scans, found by watching its folder', async () => {
    const a = startAgent({ scanIntervalMs: 60_000 });
    await until('first scan', async () => (a.status().watchedFolders > 0 ? true : undefined));
    const k = key({ taskId: 'quick' });
    const bytes = randomBytes(3000);
    const file = await writeLog(k, bytes);
    await writeFile(`${file}${COMPLETION_MARKER_SUFFIX}`, '');
    const shipped = await until('shipped', recordIn(k, 'shipped'));
    expect(shipped.sha256).toBe(sha(bytes));
    expect(sha(await readAll(store, k))).toBe(sha(bytes));
  });

  it('finishes an idle attempt as one final object recorded abandoned, and ships it again when it grows', async () => {
    const k = key();
    const bytes = randomBytes(5000);
    const file = await writeLog(k, bytes);
    const a = startAgent({ idleTimeoutMs: 300 });
    const abandoned = await until('abandoned', recordIn(k, 'abandoned'));
    expect(abandoned.agentUrl).toBe(AGENT_URL);
    expect(await store.stat(k)).toMatchObject({ size: bytes.length, complete: true });
    await until('not followed', async () => (a.following.length === 0 ? true : undefined));
    // The agent never writes the marker: the log is whole only as far as anyone knows.
    await expect(stat(`${file}${COMPLETION_MARKER_SUFFIX}`)).rejects.toThrow();

    const more = randomBytes(700);
    await appendFile(file, more);
    await writeFile(`${file}${COMPLETION_MARKER_SUFFIX}`, '');
    const all = Buffer.concat([bytes, more]);
    const shipped = await until('shipped again', recordIn(k, 'shipped'));
    expect(shipped).toMatchObject({ size: all.length, sha256: sha(all) });
    expect(sha(await readAll(store, k))).toBe(sha(all));
  });

  it('leaves an attempt another process ships to it, recording this agent as its live source', async () => {
    const k = key();
    const file = await writeLog(k, Buffer.from('written by tasklog run\n'));
    const stop = new AbortController();
    const other = newShipper().follow(file, { signal: stop.signal, pollIntervalMs: 20 });
    await until('running', recordIn(k, 'running'));
    const a = startAgent();
    await until('agent URL recorded', async () =>
      (await catalog.get(k))?.agentUrl === AGENT_URL ? true : undefined,
    );
    expect(a.following).toEqual([]);
    stop.abort();
    await other;
  });

  it('with the idle rule, a log held open for writing by a process is not finished', async () => {
    const k = key();
    const file = await writeLog(k, Buffer.from('sleeping task\n'));
    const past = new Date(Date.now() - 60_000);
    await utimes(file, past, past);
    const rule = idleRule(1000, 'shipped');
    const attempt = { key: k, relativePath: pathTemplate.render(k), file };
    const holder = spawn('sh', ['-c', `exec 3>>"$0"; echo ready; exec sleep 30`, file], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      await once(holder.stdout!, 'data');
      expect(await rule.judge([attempt])).toEqual([false]);
    } finally {
      holder.kill('SIGKILL');
      await once(holder, 'exit');
    }
    expect(await rule.judge([attempt])).toEqual([{ state: 'shipped' }]);
  });

  it("the Airflow rule falls back to idleness, with one warning, while Airflow's database is unreachable", async () => {
    const k = key();
    const file = await writeLog(k, Buffer.from('written while the database was down\n'));
    const past = new Date(Date.now() - 60_000);
    await utimes(file, past, past);
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    let reachable = false;
    const rule = airflowDbRule(
      {
        statusOf: async (keys) => {
          if (!reachable) throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
          return keys.map(() => ({ finished: true, state: 'success' }));
        },
        close: async () => {},
      },
      idleRule(1000, 'abandoned'),
      logger,
    );
    const attempt = { key: k, relativePath: pathTemplate.render(k), file };
    expect(await rule.judge([attempt])).toEqual([{ state: 'abandoned' }]);
    expect(await rule.judge([attempt])).toEqual([{ state: 'abandoned' }]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('agent.airflow_db_url');
    reachable = true;
    expect(await rule.judge([attempt])).toEqual([{ state: 'shipped', airflowState: 'success' }]);
  });

  it('close() with a drain ships an attempt that its completion rule found finished in the last scan', async () => {
    const k = key();
    const bytes = randomBytes(4000);
    await writeLog(k, bytes);
    let airflowSaysDone = false;
    const rule: CompletionRule = {
      judge: async (attempts) =>
        attempts.map(() =>
          airflowSaysDone ? { state: 'shipped', airflowState: 'success' } : false,
        ),
      close: async () => {},
    };
    const a = startAgent({ scanIntervalMs: 60_000, completion: rule });
    await until('running', recordIn(k, 'running'));
    airflowSaysDone = true; // the task ended; the pod is told to stop before the next scan
    await a.close({ drainMs: 10_000 });
    expect(await catalog.get(k)).toMatchObject({
      state: 'shipped',
      airflowState: 'success',
      sha256: sha(bytes),
    });
    expect(await store.stat(k)).toMatchObject({ complete: true, size: bytes.length });
  });

  it('close() stops every follow and leaves the attempts running', async () => {
    const k = key();
    await writeLog(k, randomBytes(2000));
    const a = startAgent();
    await until('running', recordIn(k, 'running'));
    await a.close();
    expect(a.following).toEqual([]);
    expect((await catalog.get(k))?.state).toBe('running');
  });
});
