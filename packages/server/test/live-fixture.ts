import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AgentTokenKeys,
  type AttemptKey,
  type Catalog,
  COMPLETION_MARKER_SUFFIX,
  LocalStore,
  type LogStore,
  loadAgentTokenKeys,
  openCatalog,
  PathTemplate,
  Shipper,
} from '@tasklog/core';
import {
  Agent,
  createAgentApp,
  type RunningServer,
  startServer,
  type TasklogApp,
} from '@tasklog/server';
import { pino } from 'pino';
import { HS512_SECRET } from './agent-fixture.js';
import { key, localLogFiles, shipperOptions } from './fixture.js';
import { createCheckedApp } from './openapi-recorder.js';

// Seeded, so a failing case can be replayed.
export { prng } from '@tasklog/core/testing';

export interface LiveFixture {
  dir: string;
  catalog: Catalog;
  store: LogStore;
  proxy: RunningServer;
  app: TasklogApp;
  keys: AgentTokenKeys;
  /** `/log/` requests the agent's HTTP server received. */
  agentLogRequests(): number;
  /** Closes the agent's HTTP server and cuts its connections; its shipper keeps running. */
  killAgentHttp(): Promise<void>;
  /** The attempt's local log file (the worker's copy). */
  fileOf(k: AttemptKey): string;
  append(k: AttemptKey, text: string): Promise<void>;
  finish(k: AttemptKey): Promise<void>;
  /** Waits until the catalog says the attempt is running with an agent URL. */
  waitRunning(k: AttemptKey): Promise<void>;
  /** Writes `text` as the attempt's first bytes and waits until it is running (`waitRunning`). */
  startRunning(k: AttemptKey, text: string): Promise<void>;
  close(): Promise<void>;
}

/** The attempt the live tests follow: fixture.ts's `key()`, try `tryNumber`. */
export function liveKey(tryNumber = 1): AttemptKey {
  return key({ tryNumber });
}

export interface LiveFixtureOptions {
  /** The proxy's ring per attempt; default the hub's. */
  ringBytes?: number;
  /** Give the proxy signing keys; default true. Without them follow reads only the archive. */
  liveEnabled?: boolean;
  /** The archive; default a LocalStore in the fixture's folder. */
  store?: LogStore;
}

export async function startLiveFixture(options: LiveFixtureOptions = {}): Promise<LiveFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'tasklog-live-'));
  const base = join(dir, 'logs');
  await mkdir(base, { recursive: true });
  const pathTemplate = new PathTemplate();
  const keys = await loadAgentTokenKeys({ algorithm: 'HS512', secret: HS512_SECRET });
  const logger = pino({ level: 'silent' });
  const store = options.store ?? new LocalStore({ root: join(dir, 'archive'), pathTemplate });
  const catalog = await openCatalog(`sqlite://${join(dir, 'catalog.db')}`, { migrate: 'auto' });

  const agentApp = createAgentApp({
    baseLogFolder: base,
    pathTemplate,
    keys,
    logger,
    pollIntervalMs: 20,
  });
  let logRequests = 0;
  const agentServer = http.createServer((req, res) => {
    if (req.url?.startsWith('/log/')) logRequests++;
    agentApp(req, res);
  });
  await new Promise<void>((resolve) => agentServer.listen(0, '127.0.0.1', resolve));
  const agentUrl = `http://127.0.0.1:${(agentServer.address() as AddressInfo).port}`;

  const shipper = new Shipper(shipperOptions(dir, { store, catalog, pathTemplate }));
  const agent = new Agent({
    shipper,
    catalog,
    pathTemplate,
    baseLogFolder: base,
    agentUrl,
    logger,
    scanIntervalMs: 30,
    flushIntervalMs: 100,
    pollIntervalMs: 20,
  });
  agent.start();

  const app = createCheckedApp({
    store,
    catalog,
    pathTemplate,
    logger,
    agentTokenKeys: options.liveEnabled === false ? undefined : keys,
    live: { pollIntervalMs: 30, agentRetryMs: 200, ringBytes: options.ringBytes },
  });
  const proxy = await startServer({
    app,
    host: '127.0.0.1',
    port: 0,
    shutdownTimeoutMs: 500,
    logger,
  });

  const logs = localLogFiles(base, pathTemplate);
  const waitRunning = async (k: AttemptKey) => {
    for (;;) {
      const r = await catalog.get(k);
      if (r?.state === 'running' && r.agentUrl) return;
      await sleep(10);
    }
  };
  let agentClosed = false;
  const killAgentHttp = async () => {
    if (agentClosed) return;
    agentClosed = true;
    const closed = new Promise<void>((resolve) => agentServer.close(() => resolve()));
    agentServer.closeAllConnections();
    await closed;
  };
  return {
    dir,
    catalog,
    store,
    proxy,
    app,
    keys,
    agentLogRequests: () => logRequests,
    killAgentHttp,
    fileOf: logs.fileOf,
    async append(k, text) {
      await logs.write(k, text, 'append');
    },
    async finish(k) {
      await writeFile(`${logs.fileOf(k)}${COMPLETION_MARKER_SUFFIX}`, '');
    },
    waitRunning,
    async startRunning(k, text) {
      await logs.write(k, text, 'append');
      await waitRunning(k);
    },
    async close() {
      await proxy.close();
      await app.closeStores();
      await agent.close();
      await killAgentHttp();
      await catalog.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The proxy path of an attempt's followed log. */
export function followPath(k: AttemptKey, query: string): string {
  const e = encodeURIComponent;
  return `/api/v1/dags/${e(k.dagId)}/runs/${e(k.runId)}/tasks/${e(k.taskId)}/attempts/${k.tryNumber}/log?follow=true&${query}`;
}
