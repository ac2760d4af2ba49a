import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  type AttemptKey,
  type Catalog,
  LocalStore,
  type LogStore,
  type LogWriter,
  openCatalog,
  PathTemplate,
  type ShipperOptions,
} from '@tasklog/core';
import { type AppDeps, type RunningServer, startServer, type TasklogApp } from '@tasklog/server';
import { pino } from 'pino';
import { afterEach } from 'vitest';
import { attemptKeys } from '../../../test/support/attempts.js';
import { sha256 } from '../../../test/support/hash.js';
import { createCheckedApp } from './openapi-recorder.js';

export { sha256 };

export interface Fixture {
  dir: string;
  store: LocalStore;
  catalog: Catalog;
  pathTemplate: PathTemplate;
  app: TasklogApp;
  running: RunningServer;
  url: string;
  /** Writes a finished log to `store` and records it in the catalog as shipped. */
  archive(key: AttemptKey, bytes: Uint8Array, store?: LogStore): Promise<void>;
  /** Writes and flushes `bytes` without finishing, as a running attempt's shipper would. */
  writeRunning(key: AttemptKey, bytes: Uint8Array): Promise<LogWriter>;
  close(): Promise<void>;
}

/** The attempts the server tests serve: the first try of etl's unmapped `extract` unless given. */
export const key = attemptKeys({
  dagId: 'etl',
  runId: 'manual__2024-05-01T10:00:00+00:00',
  taskId: 'extract',
});

/**
 * `start`, wrapped so that whatever a test starts with it is closed after that test (this
 * registers the afterEach): `const start = closedAfterEach(startFixture)` in a describe block.
 */
export function closedAfterEach<A extends unknown[], T extends { close(): Promise<void> }>(
  start: (...args: A) => Promise<T>,
): (...args: A) => Promise<T> {
  let started: T[] = [];
  afterEach(async () => {
    const closing = started;
    started = [];
    for (const s of closing) await s.close();
  });
  return async (...args) => {
    const s = await start(...args);
    started.push(s);
    return s;
  };
}

/** A shipper's options: from `<dir>/logs`, its state in `<dir>/state`, local copies kept. */
export function shipperOptions(
  dir: string,
  deps: Pick<ShipperOptions, 'store' | 'catalog' | 'pathTemplate'>,
): ShipperOptions {
  return {
    ...deps,
    baseLogFolder: join(dir, 'logs'),
    stateFolder: join(dir, 'state'),
    deleteLocalCopy: false,
  };
}

/** The attempts' local log files below `base`, laid out by `pathTemplate`, as a worker's. */
export function localLogFiles(base: string, pathTemplate: PathTemplate) {
  const fileOf = (k: AttemptKey) => join(base, ...pathTemplate.render(k).split('/'));
  return {
    /** Absolute path of an attempt's log. */
    fileOf,
    /** Writes `data` to the attempt's log, or appends it, creating its folders; returns the path. */
    async write(
      k: AttemptKey,
      data: Uint8Array | string,
      how: 'replace' | 'append' = 'replace',
    ): Promise<string> {
      const file = fileOf(k);
      await mkdir(dirname(file), { recursive: true });
      await (how === 'append' ? appendFile : writeFile)(file, data);
      return file;
    },
  };
}

/** The API path of an attempt's log, ids URL-encoded as a client must. */
export function logPath(k: AttemptKey, query = ''): string {
  const e = encodeURIComponent;
  const map = k.mapIndex >= 0 ? `mapIndex=${k.mapIndex}` : '';
  const q = [map, query].filter(Boolean).join('&');
  return `/api/v1/dags/${e(k.dagId)}/runs/${e(k.runId)}/tasks/${e(k.taskId)}/attempts/${k.tryNumber}/log${q ? `?${q}` : ''}`;
}

export async function startFixture(
  options: { shutdownTimeoutMs?: number; logger?: pino.Logger; deps?: Partial<AppDeps> } = {},
): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'tasklog-server-'));
  const pathTemplate = new PathTemplate();
  const store = new LocalStore({ root: join(dir, 'archive'), pathTemplate });
  const catalog = await openCatalog(`sqlite://${join(dir, 'catalog.db')}`, { migrate: 'auto' });
  const logger = options.logger ?? pino({ level: 'silent' });
  const app = createCheckedApp({ store, catalog, pathTemplate, logger, ...options.deps });
  const running = await startServer({
    app,
    host: '127.0.0.1',
    port: 0,
    shutdownTimeoutMs: options.shutdownTimeoutMs ?? 30_000,
    logger,
  });
  const writers: LogWriter[] = [];

  return {
    dir,
    store,
    catalog,
    pathTemplate,
    app,
    running,
    url: running.url,
    async archive(k, bytes, target = store) {
      const writer = await target.openWriter(k);
      const piece = 1 << 20;
      for (let at = 0; at < bytes.length; at += piece) {
        await writer.append(bytes.subarray(at, at + piece));
      }
      const digest = { size: bytes.length, sha256: sha256(bytes) };
      await writer.finish(digest);
      await catalog.upsert(k, {
        relativePath: pathTemplate.render(k),
        state: 'shipped',
        ...digest,
        storeUrl: target.url,
        shippedAt: new Date(),
      });
    },
    async writeRunning(k, bytes) {
      const writer = await store.openWriter(k);
      writers.push(writer);
      await writer.append(bytes);
      await writer.flush();
      await catalog.upsert(k, { relativePath: pathTemplate.render(k), state: 'running' });
      return writer;
    },
    async close() {
      await running.close();
      await app.closeStores();
      for (const w of writers) await w.abort().catch(() => undefined);
      await catalog.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * GET with the path sent exactly as written. fetch() normalises `..` and `%2e%2e` segments
 * away before sending, which would hide exactly the requests a path-traversal test needs.
 */
export function rawGet(
  base: string,
  path: string,
  headers: http.OutgoingHttpHeaders = {},
): Promise<RawResponse> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ hostname, port, path, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}
