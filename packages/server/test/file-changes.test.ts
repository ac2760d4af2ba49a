import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { makeTempDir, removeTempDir } from '../../../test/support/temp-dir.js';
import { FileChanges } from '../src/agent/file-changes.js';

// A poll interval no test waits out: whatever resolves `next()` here is a file-system event.
const HOUR = 3_600_000;

/** A folder holding a log, the log watched, for the test that calls it; removed after. */
async function watchedLog() {
  const dir = await makeTempDir('file-changes');
  const log = join(dir, 'attempt=1.log');
  await writeFile(log, 'first line\n');
  const changes = new FileChanges(log, ['.done']);
  onTestFinished(async () => {
    changes.close();
    await removeTempDir(dir);
  });
  return { dir, log, changes };
}

describe('FileChanges (the agent waiting at the end of a followed log)', () => {
  it('watches on a local file system', async () => {
    const { changes } = await watchedLog();
    expect(changes.watching).toBe(true);
  });

  it('wakes as soon as the log grows, not when the poll is due', async () => {
    const { log, changes } = await watchedLog();
    const woken = changes.next(HOUR, new AbortController().signal);
    await appendFile(log, 'second line\n');
    await expect(woken).resolves.toBeUndefined();
  });

  it('wakes when the completion marker appears', async () => {
    const { log, changes } = await watchedLog();
    const woken = changes.next(HOUR, new AbortController().signal);
    await writeFile(`${log}.done`, '{"state":"success"}');
    await expect(woken).resolves.toBeUndefined();
  });

  it('remembers a change made while nobody waited', async () => {
    const { log, changes } = await watchedLog();
    const first = changes.next(HOUR, new AbortController().signal);
    await appendFile(log, 'a\n');
    await first;
    await appendFile(log, 'b\n');
    // The event for "b" arrives before the next wait begins, or during it: either way it wakes.
    await expect(changes.next(HOUR, new AbortController().signal)).resolves.toBeUndefined();
  });

  it('ignores other files in the same folder', async () => {
    const { dir, log, changes } = await watchedLog();
    const woken = changes.next(HOUR, new AbortController().signal).then(() => 'woken');
    await writeFile(join(dir, 'attempt=2.log'), 'another attempt\n');
    const first = await Promise.race([woken, sleep(300).then(() => 'still waiting')]);
    expect(first).toBe('still waiting');
    await appendFile(log, 'now ours\n');
    await expect(woken).resolves.toBe('woken');
  });

  it('falls back to the poll interval', async () => {
    const { changes } = await watchedLog();
    await expect(changes.next(10, new AbortController().signal)).resolves.toBeUndefined();
  });

  it('rejects with the reason when the reader goes away', async () => {
    const { changes } = await watchedLog();
    const gone = new AbortController();
    const waiting = changes.next(HOUR, gone.signal);
    gone.abort(new Error('client closed'));
    await expect(waiting).rejects.toThrow('client closed');
  });
});
