import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AttemptKey, LocalStore, type LogStore } from '@tasklog/core';
import { startServer } from '@tasklog/server';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { type Fixture, key, logPath, sha256, startFixture } from './fixture.js';

/** A deterministic ~`size`-byte log of numbered lines. */
function bigLog(size: number): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  for (let i = 0; total < size; i++) {
    const line = Buffer.from(`${String(i).padStart(8, '0')} the quick brown fox — jumps ✓\n`);
    parts.push(line);
    total += line.length;
  }
  return Buffer.concat(parts).subarray(0, size);
}

/** Starts a download and resolves with the response once the headers are in, body unread. */
function startDownload(base: string, path: string): Promise<http.IncomingMessage> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.get({ hostname, port, path }, resolve);
    req.on('error', reject);
  });
}

/** Reads the body slowly: a pause after each chunk keeps the server waiting on backpressure. */
async function readSlowly(res: http.IncomingMessage): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of res) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
    await sleep(1);
  }
  return { size, sha256: hash.digest('hex') };
}

describe('startServer', () => {
  it('lets an in-flight large download finish during a graceful close', async () => {
    const f = await startFixture({ shutdownTimeoutMs: 120_000 });
    try {
      const log = bigLog(20 * 1024 * 1024);
      const k = key({ taskId: 'big' });
      await f.archive(k, log);
      const res = await startDownload(f.url, logPath(k));
      expect(res.statusCode).toBe(200);
      const download = readSlowly(res);
      const closed = f.running.close();
      // No new connection is accepted once close() has begun.
      await expect(fetch(`${f.url}/health`)).rejects.toThrow();
      expect(await download).toEqual({ size: log.length, sha256: sha256(log) });
      await closed;
      expect(f.running.server.listening).toBe(false);
    } finally {
      await f.close();
    }
  });

  it('rejects when the port is already taken', async () => {
    const f = await startFixture();
    try {
      const port = Number(new URL(f.url).port);
      await expect(
        startServer({
          app: (_req, res) => res.end(),
          host: '127.0.0.1',
          port,
          shutdownTimeoutMs: 1000,
          logger: pino({ level: 'silent' }),
        }),
      ).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await f.close();
    }
  });

  it('closes idle keep-alive connections at once instead of waiting for the timeout', async () => {
    const f = await startFixture({ shutdownTimeoutMs: 10 * 60_000 });
    try {
      const agent = new http.Agent({ keepAlive: true });
      const { hostname, port } = new URL(f.url);
      const res = await new Promise<http.IncomingMessage>((resolve, reject) =>
        http.get({ hostname, port, path: '/health', agent }, resolve).on('error', reject),
      );
      res.resume();
      await once(res, 'end');
      // The test would time out here if the idle socket kept the server open for 10 minutes.
      await f.running.close();
      agent.destroy();
    } finally {
      await f.close();
    }
  });

  it('destroys a download still running when the shutdown timeout is reached', async () => {
    const f = await startFixture({ shutdownTimeoutMs: 50 });
    try {
      const k = key({ taskId: 'stuck' });
      await f.archive(k, bigLog(8 * 1024 * 1024));
      const res = await startDownload(f.url, logPath(k));
      res.pause(); // a reader that never reads
      const ended = new Promise<string>((resolve) => {
        res.on('aborted', () => resolve('aborted'));
        res.on('error', () => resolve('error'));
        res.on('end', () => resolve('end'));
      });
      await f.running.close();
      res.resume();
      expect(await ended).not.toBe('end');
    } finally {
      await f.close();
    }
  });

  it('keeps serving after a client abandons a download half-way', async () => {
    const f = await startFixture();
    try {
      const k = key({ taskId: 'abandoned' });
      const log = bigLog(8 * 1024 * 1024);
      await f.archive(k, log);
      const res = await startDownload(f.url, logPath(k));
      await once(res, 'data');
      res.destroy();
      const again = await fetch(f.url + logPath(k));
      expect(sha256(Buffer.from(await again.arrayBuffer()))).toBe(sha256(log));
    } finally {
      await f.close();
    }
  });
});

/** Archives `text` as attempt `taskId` in another store, a LocalStore at `<f.dir>/<folder>`. */
async function archiveInOtherStore(
  f: Fixture,
  folder: string,
  { taskId, text }: { taskId: string; text: string },
): Promise<{ store: LocalStore; k: AttemptKey }> {
  const store = new LocalStore({ root: join(f.dir, folder) });
  const k = key({ taskId });
  await f.archive(k, Buffer.from(text), store);
  return { store, k };
}

describe('createApp', () => {
  it('reads an attempt from the store its catalog record names, when listed in store.read_urls, opening it once', async () => {
    const opened: string[] = [];
    const openStore = async (url: string): Promise<LogStore> => {
      opened.push(url);
      return LocalStore.fromUrl(url);
    };
    const readStoreUrls: string[] = [];
    const f = await startFixture({ deps: { openStore, readStoreUrls } });
    try {
      const { store: older, k } = await archiveInOtherStore(f, 'older-archive', {
        taskId: 'migrated',
        text: 'archived before the migration\n',
      });
      readStoreUrls.push(older.url);
      for (let i = 0; i < 2; i++) {
        const res = await fetch(f.url + logPath(k));
        expect(await res.text()).toBe('archived before the migration\n');
      }
      expect(opened).toEqual([older.url]);
    } finally {
      await f.close();
    }
  });

  it('never opens a store a catalog row names that is not in store.read_urls (a forged row)', async () => {
    const opened: string[] = [];
    const openStore = async (url: string): Promise<LogStore> => {
      opened.push(url);
      return LocalStore.fromUrl(url);
    };
    const f = await startFixture({ deps: { openStore } });
    try {
      const { store: elsewhere, k } = await archiveInOtherStore(f, 'not-an-archive', {
        taskId: 'forged',
        text: 'a folder the proxy must not read\n',
      });
      const res = await fetch(f.url + logPath(k));
      expect(res.status).toBe(503);
      const body = await res.text();
      expect(body).not.toContain('must not read');
      expect(body).not.toContain(elsewhere.url);
      expect(opened).toEqual([]);
    } finally {
      await f.close();
    }
  });

  it('answers 503 for an attempt in another store when it cannot open other stores', async () => {
    const f = await startFixture();
    try {
      const { k } = await archiveInOtherStore(f, 'older-archive', {
        taskId: 'migrated',
        text: 'elsewhere\n',
      });
      const res = await fetch(f.url + logPath(k));
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
        'BACKEND_UNAVAILABLE',
      );
    } finally {
      await f.close();
    }
  });

  it('logs each request without the Authorization or Cookie header values', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const f = await startFixture({ logger: pino({ level: 'info' }, sink) });
    try {
      await fetch(`${f.url}/api/v1/attempts`, {
        headers: { authorization: 'Bearer top-secret-token', cookie: 'session=top-secret-cookie' },
      });
    } finally {
      await f.close();
    }
    const requestLines = lines.filter((l) => l.includes('/api/v1/attempts'));
    expect(requestLines.length).toBeGreaterThan(0);
    expect(lines.join('')).not.toContain('top-secret');
  });
});
