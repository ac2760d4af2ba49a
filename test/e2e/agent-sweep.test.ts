import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AttemptKey, attemptKey, openCatalog, PathTemplate } from '@tasklog/core';
import { prng } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService } from '../support/cli.js';
import { sha256 } from '../support/hash.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';

const template = new PathTemplate();

/** Files under `dir`, recursively, as paths relative to it. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

describe('the agent archives every finished attempt, whoever wrote it (local store, SQLite)', () => {
  let home: string;
  let base: string;
  let env: NodeJS.ProcessEnv;
  const random = prng(8);
  const written = new Map<string, { key: AttemptKey; bytes: Buffer }>();

  beforeAll(async () => {
    home = await makeTempDir('agent-sweep');
    base = join(home, 'logs');
    env = {
      PATH: process.env.PATH,
      TASKLOG_HOME: home,
      TASKLOG__AGENT__TOKEN_SECRET: randomBytes(64).toString('base64'),
      TASKLOG__AGENT__SCAN_INTERVAL: '1',
      TASKLOG__STORE__FLUSH_INTERVAL: '0.2',
      TASKLOG__LOGGING__LEVEL: 'warn',
    };
  });

  afterAll(async () => {
    await removeTempDir(home);
  });

  /** Some empty, some without a newline at the end, most a few lines. */
  function content(): Buffer {
    const r = random();
    if (r < 0.1) return Buffer.alloc(0);
    const lines = Array.from(
      { length: 1 + Math.floor(random() * 20) },
      (_, i) => `[2024-01-01T00:00:0${i % 10}] line ${i} é€ ${random().toString(36)}`,
    );
    return Buffer.from(lines.join('\n') + (r < 0.3 ? '' : '\n'));
  }

  /** A quick task: its log and its completion marker, written within a few ms of each other. */
  async function quickAttempt(taskId: string): Promise<void> {
    const key = attemptKey({
      dagId: 'quick',
      runId: 'manual__2024-01-01T00:00:00+00:00',
      taskId,
      tryNumber: 1,
    });
    const relativePath = template.render(key);
    const file = join(base, relativePath);
    const bytes = content();
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, bytes);
    await writeFile(`${file}.done`, '{"state":"success","exitCode":0}\n');
    written.set(relativePath, { key, bytes });
  }

  it('1,000 quick attempts while it runs, 50 finished before it starts and 50 while it is killed: each archived byte-identical, recorded shipped, no leftovers', async () => {
    for (let i = 0; i < 50; i++) await quickAttempt(`before_${i}`);
    let agent = await startService('agent', [], env);
    for (let i = 0; i < 1000; i++) {
      await quickAttempt(`during_${i}`);
      if (i === 500) {
        agent.child.kill('SIGKILL');
        await new Promise((r) => agent.child.once('exit', r));
        for (let j = 0; j < 50; j++) await quickAttempt(`killed_${j}`);
        agent = await startService('agent', [], env);
      }
    }

    const catalog = await openCatalog(`sqlite://${join(home, 'catalog.db')}`, { migrate: 'never' });
    try {
      const deadline = Date.now() + 180_000;
      let shipped = 0;
      while (Date.now() < deadline) {
        const records = await catalog.list({ dagId: 'quick' }, { limit: 5000 });
        shipped = records.filter((r) => r.state === 'shipped').length;
        if (shipped === written.size) break;
        await sleep(500);
      }
      expect(shipped).toBe(written.size);

      const records = await catalog.list({ dagId: 'quick' }, { limit: 5000 });
      expect(records).toHaveLength(1100);
      for (const record of records) {
        const expected = written.get(record.relativePath)!;
        expect(record).toMatchObject({
          state: 'shipped',
          size: expected.bytes.length,
          sha256: sha256(expected.bytes),
          exitCode: 0,
        });
        const archived = await readFile(join(home, 'archive', record.relativePath));
        expect(sha256(archived)).toBe(sha256(expected.bytes));
      }
      // One final file per attempt and nothing else: no chunks, no temp files.
      const archive = await listFiles(join(home, 'archive'));
      expect(archive.sort()).toEqual([...written.keys()].sort());
      // No ship left half-done: journals and locks are gone.
      expect(await listFiles(join(home, 'state', 'journal'))).toEqual([]);
      expect(await listFiles(join(home, 'state', 'locks'))).toEqual([]);
    } finally {
      await catalog.close();
      await agent.stop();
    }
  }, 300_000);
});
