import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireAttemptLock } from '../src/attempt-lock.js';
import { AttemptBusyError } from '../src/index.js';

const REL = 'dag_id=etl/run_id=r/task_id=t/attempt=1.log';
const lockFile = (state: string) =>
  join(state, 'locks', `${createHash('sha256').update(REL).digest('hex').slice(0, 32)}.lock`);

describe('the attempt lock', () => {
  let state: string;
  beforeEach(async () => {
    state = await mkdtemp(join(tmpdir(), 'tasklog-lock-'));
  });
  afterEach(async () => {
    await rm(state, { recursive: true, force: true });
  });

  async function plant(holder: { pid: number; host: string }, ageMs = 0): Promise<void> {
    await mkdir(join(state, 'locks'), { recursive: true });
    await writeFile(
      lockFile(state),
      JSON.stringify({ ...holder, since: new Date().toISOString() }),
    );
    const at = new Date(Date.now() - ageMs);
    await utimes(lockFile(state), at, at);
  }

  it('is held by one holder at a time and free again once released', async () => {
    const first = await acquireAttemptLock(state, REL);
    await expect(acquireAttemptLock(state, REL)).rejects.toBeInstanceOf(AttemptBusyError);
    await first.release();
    const second = await acquireAttemptLock(state, REL);
    await second.release();
    expect(await readdir(join(state, 'locks'))).toEqual([]);
  });

  it('is taken over at once from a holder on this host whose process is gone', async () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    await plant({ pid: gone, host: hostname() });
    const lock = await acquireAttemptLock(state, REL);
    await lock.release();
  });

  it('is taken over from a holder elsewhere that stopped renewing it', async () => {
    await plant({ pid: 1, host: 'another-container' }, 60_000);
    const lock = await acquireAttemptLock(state, REL);
    await lock.release();
  });

  it('stays with a holder elsewhere that renews it', async () => {
    await plant({ pid: 1, host: 'another-container' });
    await expect(acquireAttemptLock(state, REL)).rejects.toBeInstanceOf(AttemptBusyError);
  });

  it('waits for the holder to release it when asked to wait', async () => {
    const first = await acquireAttemptLock(state, REL);
    const waiting = acquireAttemptLock(state, REL, { mode: 'wait' });
    setTimeout(() => void first.release(), 200);
    const second = await waiting;
    await second.release();
  });
});
