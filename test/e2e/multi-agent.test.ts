import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { type AttemptKey, attemptKey, PathTemplate } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../packages/core/src/stores/s3/store.js';
import { runCli, startService } from '../support/cli.js';
import { sha256 } from '../support/hash.js';
import { type PostgresFixture, startPostgres } from '../support/postgres.js';
import { type S3rverFixture, startS3rver } from '../support/s3rver.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';

// Three processes share one catalog. With a real server (.ci/run sets TASKLOG_TEST_POSTGRES_URL)
// each process has its own sessions; the PGlite fallback serves every connection from one backend
// session, which is enough for this test (it needs no cross-session locking) but proves less.

const RUN_ID = 'manual__2026-01-01T00:00:00+00:00';
const keyA = attemptKey({ dagId: 'alpha', runId: RUN_ID, taskId: 'grow', tryNumber: 1 });
const keyB = attemptKey({ dagId: 'beta', runId: RUN_ID, taskId: 'grow', tryNumber: 1 });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns something truthy; generous, so a loaded machine only slows it. */
async function waitFor<T>(what: string, check: () => Promise<T> | T, deadlineMs = 20_000) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface Follower {
  /** Log bytes received, in order. */
  bytes: () => Buffer;
  /** Set when a record's offset was not where the previous one ended (a gap or a duplicate). */
  discontinuity: string | undefined;
  sourceLost: boolean;
  eof: { offset: number; complete: boolean } | undefined;
  /** Resolves when the body ends (or the follower is aborted). */
  done: Promise<void>;
  abort: () => void;
}

/** Follows one attempt through the proxy as an NDJSON client, reading the body line by line. */
function follow(proxyUrl: string, key: AttemptKey): Follower {
  const controller = new AbortController();
  const chunks: Buffer[] = [];
  let expected = 0;
  const f: Follower = {
    bytes: () => Buffer.concat(chunks),
    discontinuity: undefined,
    sourceLost: false,
    eof: undefined,
    done: Promise.resolve(),
    abort: () => controller.abort(),
  };
  const url =
    `${proxyUrl}/api/v1/dags/${encodeURIComponent(key.dagId)}/runs/${encodeURIComponent(key.runId)}` +
    `/tasks/${encodeURIComponent(key.taskId)}/attempts/${key.tryNumber}/log?follow=true`;
  const onRecord = (r: {
    offset: number;
    text?: string;
    bytes?: string;
    event?: string;
    eof?: boolean;
    complete?: boolean;
  }) => {
    if (r.event === 'source-lost') f.sourceLost = true;
    else if (r.eof) f.eof = { offset: r.offset, complete: r.complete === true };
    else {
      const b =
        r.text !== undefined ? Buffer.from(r.text, 'utf8') : Buffer.from(r.bytes ?? '', 'base64');
      if (r.offset !== expected) f.discontinuity ??= `record at ${r.offset}, expected ${expected}`;
      chunks.push(b);
      expected = r.offset + b.length;
    }
  };
  f.done = (async () => {
    try {
      const res = await fetch(url, {
        headers: { Accept: 'application/x-ndjson' },
        signal: controller.signal,
      });
      if (res.status !== 200) throw new Error(`follow ${url}: HTTP ${res.status}`);
      const decoder = new TextDecoder();
      let pending = '';
      for await (const part of res.body as AsyncIterable<Uint8Array>) {
        pending += decoder.decode(part, { stream: true });
        let nl = pending.indexOf('\n');
        while (nl >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (line) onRecord(JSON.parse(line));
          nl = pending.indexOf('\n');
        }
      }
    } catch (err) {
      if (!controller.signal.aborted) throw err;
    }
  })();
  return f;
}

describe('two agents behind one proxy, sharing a PostgreSQL catalog and an S3 archive', () => {
  let s3: S3rverFixture;
  let pg: PostgresFixture;
  let root: string;
  let store: S3Store;
  let proxy: Awaited<ReturnType<typeof startService>>;
  let agentA: Awaited<ReturnType<typeof startService>>;
  let agentB: Awaited<ReturnType<typeof startService>>;
  const followers: Follower[] = [];
  const rel = new PathTemplate();

  beforeAll(async () => {
    s3 = await startS3rver('multi-agent');
    pg = await startPostgres();
    root = await makeTempDir('multi-agent');
    const shared: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      ...s3.cliEnv('logs'),
      TASKLOG__STORE__FLUSH_INTERVAL: '0.2',
      TASKLOG__CATALOG__URL: pg.url,
      // The proxy signs agent tokens with the secret the agents verify them with.
      TASKLOG__AGENT__TOKEN_SECRET: randomBytes(64).toString('base64'),
    };
    const envFor = (name: string): NodeJS.ProcessEnv => ({
      ...shared,
      TASKLOG_HOME: join(root, name),
      TASKLOG__CORE__BASE_LOG_FOLDER: join(root, name, 'logs'),
    });
    store = S3Store.fromUrl(`s3://${s3.bucket}/logs`, {
      s3: { endpoint: s3.endpoint, force_path_style: true },
    });

    // A PostgreSQL catalog never migrates itself.
    const migrated = await runCli(['db', 'migrate'], envFor('proxy'));
    expect(migrated.stderr).toBe('');
    expect(migrated.code).toBe(0);

    proxy = await startService('serve', [], envFor('proxy'));
    agentA = await startService('agent', [], envFor('a'));
    agentB = await startService('agent', [], envFor('b'));
  }, 60_000);

  afterAll(async () => {
    for (const f of followers) f.abort();
    await Promise.allSettled(followers.map((f) => f.done));
    if (agentA && agentA.child.exitCode === null && agentA.child.signalCode === null) {
      agentA.child.kill('SIGKILL');
    }
    await proxy?.stop();
    await agentB?.stop();
    await store?.close();
    await s3?.close();
    await pg?.close();
    await removeTempDir(root);
  }, 60_000);

  it("keeps streaming B's log to the end while A's followers get A's archived bytes after A is killed", async () => {
    const fileA = join(root, 'a', 'logs', ...rel.render(keyA).split('/'));
    const fileB = join(root, 'b', 'logs', ...rel.render(keyB).split('/'));
    for (const file of [fileA, fileB]) {
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, 'first line é\n');
    }
    const attempt = async (key: AttemptKey) => {
      const res = await fetch(`${proxy.url}/api/v1/attempts?dagId=${key.dagId}`);
      const { attempts } = (await res.json()) as {
        attempts: Array<{ state: string; agentUrl: string | null }>;
      };
      return attempts[0];
    };
    // Each agent registers the attempt it found in its own folder, with its own URL.
    await waitFor(
      'A running on agent A',
      async () => (await attempt(keyA))?.agentUrl === agentA.url,
    );
    await waitFor(
      'B running on agent B',
      async () => (await attempt(keyB))?.agentUrl === agentB.url,
    );
    expect((await attempt(keyA))?.state).toBe('running');
    expect((await attempt(keyB))?.state).toBe('running');

    const followersA = [follow(proxy.url, keyA), follow(proxy.url, keyA)];
    const followersB = [follow(proxy.url, keyB), follow(proxy.url, keyB)];
    followers.push(...followersA, ...followersB);

    // Whole lines in one write each, so every record a follower gets is a complete line.
    let i = 0;
    const writeLines = async () => {
      await appendFile(fileA, `A[${i}] ${'payload é€ '.repeat(i % 30)}line ${i}\n`);
      await appendFile(fileB, `B[${i}] ${'payload ü€ '.repeat(i % 30)}line ${i}\n`);
      i++;
      await sleep(30);
    };
    // Kill A only once its shipper has flushed something and every follower is receiving.
    await waitFor('A flushed and all followers receiving', async () => {
      await writeLines();
      const flushed = (await store.stat(keyA))?.size ?? 0;
      return flushed > 0 && followers.every((f) => f.bytes().length > 0);
    });
    for (let more = 0; more < 10; more++) await writeLines();

    agentA.child.kill('SIGKILL');
    await once(agentA.child, 'exit');

    const writtenA = await readFile(fileA);
    const archivedChunks: Buffer[] = [];
    for await (const chunk of store.read(keyA)) archivedChunks.push(Buffer.from(chunk.bytes));
    const archivedA = Buffer.concat(archivedChunks);
    expect(archivedA.length).toBeGreaterThan(0);
    expect(archivedA.equals(writtenA.subarray(0, archivedA.length))).toBe(true);
    expect((await store.stat(keyA))?.complete).toBe(false);
    // NDJSON records are whole lines: a line the shipper flushed only in part is never sent.
    const archivedLines = archivedA.subarray(0, archivedA.lastIndexOf(0x0a) + 1);

    for (const f of followersA) {
      await waitFor(
        "A's follower to see the source lost and the archive's bytes",
        () => f.sourceLost && f.bytes().length >= archivedLines.length,
      );
      const got = f.bytes();
      expect(f.discontinuity).toBeUndefined();
      expect(f.eof).toBeUndefined();
      // The agent may have streamed more than was flushed; all of it is A's file, in order.
      expect(got.equals(writtenA.subarray(0, got.length))).toBe(true);
      expect(got.subarray(0, archivedLines.length).equals(archivedLines)).toBe(true);
      f.abort();
    }

    // B is untouched: it goes on growing, then finishes.
    for (let more = 0; more < 20; more++) {
      await appendFile(fileB, `B after A died [${more}] ${'ß'.repeat(more * 3)}\n`);
      await sleep(20);
    }
    await appendFile(fileB, 'B last line, no newline');
    await writeFile(`${fileB}.done`, JSON.stringify({ state: 'success', exitCode: 0 }));

    const writtenB = await readFile(fileB);
    await Promise.all(followersB.map((f) => f.done));
    for (const f of followersB) {
      expect(f.discontinuity).toBeUndefined();
      expect(f.sourceLost).toBe(false);
      expect(f.eof).toEqual({ offset: writtenB.length, complete: true });
      expect(sha256(f.bytes())).toBe(sha256(writtenB));
    }
    await waitFor(
      'B shipped in the catalog',
      async () => (await attempt(keyB))?.state === 'shipped',
    );
  }, 60_000);
});
