import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireAttemptLock } from '../src/attempt-lock.js';
import { AttemptBusyError } from '../src/index.js';
import { useTempDir } from './temp-dir-fixture.js';

const REL = 'dag_id=etl/run_id=r/task_id=t/attempt=1.log';
const lockFile = (state: string) =>
  join(state, 'locks', `${createHash('sha256').update(REL).digest('hex').slice(0, 32)}.lock`);

describe('the attempt lock', () => {
  const state = useTempDir('lock');

  async function plant(holder: { pid: number; host: string }, ageMs = 0): Promise<void> {
    await mkdir(join(state.path, 'locks'), { recursive: true });
    await writeFile(
      lockFile(state.path),
      JSON.stringify({ ...holder, since: new Date().toISOString() }),
    );
    const at = new Date(Date.now() - ageMs);
    await utimes(lockFile(state.path), at, at);
  }

  it('is held by one holder at a time and free again once released', async () => {
    const first = await acquireAttemptLock(state.path, REL);
    await expect(acquireAttemptLock(state.path, REL)).rejects.toBeInstanceOf(AttemptBusyError);
    await first.release();
    const second = await acquireAttemptLock(state.path, REL);
    await second.release();
    expect(await readdir(join(state.path, 'locks'))).toEqual([]);
  });

  it('is taken over at once from a holder on this host whose process is gone', async () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    await plant({ pid: gone, host: hostname() });
    const lock = await acquireAttemptLock(state.path, REL);
    await lock.release();
  });

  it('is taken over from a holder elsewhere that stopped renewing it', async () => {
    await plant({ pid: 1, host: 'another-container' }, 60_000);
    const lock = await acquireAttemptLock(state.path, REL);
    await lock.release();
  });

  it('stays with a holder elsewhere that renews it', async () => {
    await plant({ pid: 1, host: 'another-container' });
    await expect(acquireAttemptLock(state.path, REL)).rejects.toBeInstanceOf(AttemptBusyError);
  });

  it('waits for the holder to release it when asked to wait', async () => {
    const first = await acquireAttemptLock(state.path, REL);
    const waiting = acquireAttemptLock(state.path, REL, { mode: 'wait' });
    setTimeout(() => void first.release(), 200);
    const second = await waiting;
    await second.release();
  });
});
