import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AttemptKey,
  attemptKey,
  type Catalog,
  LocalStore,
  type LogStore,
  type LogWriter,
  openCatalog,
  PathTemplate,
} from '@tasklog/core';
import { type AppDeps, createApp, type RunningServer, startServer } from '@tasklog/server';
import { pino } from 'pino';

export interface Fixture {
  dir: string;
  store: LocalStore;
  catalog: Catalog;
  pathTemplate: PathTemplate;
  running: RunningServer;
  url: string;
  /** Writes a finished log to `store` and records it in the catalog as shipped. */
  archive(key: AttemptKey, bytes: Uint8Array, store?: LogStore): Promise<void>;
  /** Writes and flushes `bytes` without finishing, as a running attempt's shipper would. */
  writeRunning(key: AttemptKey, bytes: Uint8Array): Promise<LogWriter>;
  close(): Promise<void>;
}

export function key(overrides: Partial<AttemptKey> = {}): AttemptKey {
  return attemptKey({
    dagId: 'etl',
    runId: 'manual__2024-05-01T10:00:00+00:00',
    taskId: 'extract',
    mapIndex: -1,
    tryNumber: 1,
    ...overrides,
  });
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
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
  const app = createApp({ store, catalog, pathTemplate, logger, ...options.deps });
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
