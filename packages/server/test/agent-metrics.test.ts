import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AttemptKey,
  type Catalog,
  COMPLETION_MARKER_SUFFIX,
  LocalStore,
  openCatalog,
  PathTemplate,
  Shipper,
} from '@tasklog/core';
import { Agent, AgentMetrics, Metrics } from '@tasklog/server';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '../../../test/support/hash.js';
import { parsePrometheusText } from '../../../test/support/prometheus-text.js';
import { key, localLogFiles, shipperOptions } from './fixture.js';

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await probe()) return;
    await sleep(25);
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('the agent counts what it ships', () => {
  const pathTemplate = new PathTemplate();
  let dir: string;
  let store: LocalStore;
  let catalog: Catalog;
  let metrics: Metrics;
  let shipMetrics: AgentMetrics;
  let agent: Agent | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tasklog-agent-metrics-'));
    await mkdir(join(dir, 'logs'), { recursive: true });
    store = new LocalStore({ root: join(dir, 'archive'), pathTemplate });
    catalog = await openCatalog(`sqlite://${join(dir, 'catalog.db')}`, { migrate: 'auto' });
    metrics = new Metrics();
    shipMetrics = new AgentMetrics(metrics, store.url);
  });
  afterEach(async () => {
    await agent?.close();
    agent = undefined;
    await catalog.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const scrape = async () => parsePrometheusText((await metrics.scrape()).body);
  const write = (k: AttemptKey, bytes: Uint8Array, how?: 'append') =>
    localLogFiles(join(dir, 'logs'), pathTemplate).write(k, bytes, how);

  function startAgent(options: { flushIntervalMs?: number } = {}): Agent {
    const counted = shipMetrics.instrumentCatalog(catalog);
    const shipper = new Shipper(
      shipperOptions(dir, {
        store: shipMetrics.instrumentStore(store),
        catalog: counted,
        pathTemplate,
      }),
    );
    agent = new Agent({
      shipper,
      catalog: counted,
      pathTemplate,
      baseLogFolder: join(dir, 'logs'),
      agentUrl: 'http://worker-1.example:8795',
      logger: pino({ level: 'silent' }),
      scanIntervalMs: 50,
      flushIntervalMs: options.flushIntervalMs ?? 50,
      pollIntervalMs: 20,
      metrics: shipMetrics,
    });
    shipMetrics.watch(agent);
    agent.start();
    return agent;
  }

  it('a finished log: its size in bytes shipped, one ship, one duration', async () => {
    const k = key();
    const log = randomBytes(300_000);
    const file = await write(k, log);
    await writeFile(`${file}${COMPLETION_MARKER_SUFFIX}`, '');
    startAgent();
    await until('shipped', async () => (await catalog.get(k))?.state === 'shipped');
    await until('settled', async () => agent!.status().backlog === 0);
    const m = await scrape();
    expect(m.value('tasklog_shipped_bytes_total', { backend: 'file' })).toBe(log.length);
    expect(m.value('tasklog_ships_total', { backend: 'file', outcome: 'shipped' })).toBe(1);
    expect(m.value('tasklog_ships_total', { outcome: 'failed' })).toBe(0);
    expect(m.value('tasklog_ship_duration_seconds_count', { backend: 'file' })).toBe(1);
    expect(m.value('tasklog_agent_catalog_errors_total')).toBe(0);
  });

  it('a followed log: flushes and the finish add up to its size; the lag shows while it runs', async () => {
    const k = key();
    const first = Buffer.from('started\n'.repeat(5000));
    const file = await write(k, first);
    startAgent();
    await until('first flush', async () => ((await store.stat(k))?.size ?? 0) >= first.length);
    let m = await scrape();
    expect(m.value('tasklog_agent_followed_attempts')).toBe(1);
    expect(m.value('tasklog_agent_ship_lag_bytes')).toBe(0);
    expect(m.value('tasklog_shipped_bytes_total')).toBe(first.length);

    const rest = Buffer.from('more\n'.repeat(20_000));
    await write(k, rest, 'append');
    await writeFile(`${file}${COMPLETION_MARKER_SUFFIX}`, '');
    await until('shipped', async () => (await catalog.get(k))?.state === 'shipped');
    await until('no longer followed', async () => agent!.following.length === 0);
    m = await scrape();
    const all = Buffer.concat([first, rest]);
    expect((await catalog.get(k))?.sha256).toBe(sha256(all));
    expect(m.value('tasklog_shipped_bytes_total', { backend: 'file' })).toBe(all.length);
    expect(m.value('tasklog_ships_total', { outcome: 'shipped' })).toBe(1);
    expect(m.value('tasklog_agent_followed_attempts')).toBe(0);
  });

  it('reports the bytes not yet flushed as lag, and how long they have waited', async () => {
    const k = key();
    await write(k, Buffer.from('a line\n'));
    startAgent({ flushIntervalMs: 60_000 }); // no flush during the test
    await until('followed', async () => agent!.following.length === 1);
    await write(k, Buffer.from('x'.repeat(10_000)), 'append');
    await sleep(300);
    const m = await scrape();
    expect(m.value('tasklog_agent_ship_lag_bytes')).toBe(10_007);
    expect(m.value('tasklog_agent_ship_lag_seconds')).toBeGreaterThanOrEqual(0.3);
  });

  it("counts the catalog's failed calls", async () => {
    const counted = shipMetrics.instrumentCatalog(catalog);
    await catalog.close();
    await expect(counted.get(key())).rejects.toThrow();
    expect((await scrape()).value('tasklog_agent_catalog_errors_total')).toBe(1);
    catalog = await openCatalog(`sqlite://${join(dir, 'catalog.db')}`, { migrate: 'auto' });
  });

  it('a resumed writer counts only the bytes it adds', async () => {
    const k = key();
    const before = await store.openWriter(k);
    await before.append(Buffer.alloc(100, 'a'));
    await before.flush();
    await before.abort();
    const counted = shipMetrics.instrumentStore(store);
    const after = await counted.openWriter(k);
    expect(after.committedOffset).toBe(100);
    await after.append(Buffer.alloc(50, 'b'));
    const all = Buffer.concat([Buffer.alloc(100, 'a'), Buffer.alloc(50, 'b')]);
    await after.finish({ size: all.length, sha256: sha256(all) });
    expect((await scrape()).value('tasklog_shipped_bytes_total')).toBe(50);
    expect(counted.url).toBe(store.url);
    expect(counted.capabilities).toEqual(store.capabilities);
  });
});
