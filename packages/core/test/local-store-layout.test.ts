import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { attemptKey, ConflictError, LocalStore, NotFoundError, PathTemplate } from '@tasklog/core';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '../../../test/support/hash.js';
import { recoverShip, runShipChild, type ShipJob } from '../../../test/support/killable-ship.js';
import * as fx from './local-store-fixture.js';

// What LocalStore leaves on disk: its layout, how it recovers from what a crash left, sweeping,
// and processes killed while storing; its boundaries are in local-store-paths.test.ts.
fx.useStorePerTest();

describe('LocalStore layout', () => {
  it("writes a finished log as one file at Airflow's path", async () => {
    await fx.writeLog(fx.k, 'hello\n');
    expect(await readFile(path.join(fx.root, fx.REL), 'utf8')).toBe('hello\n');
  });

  it('writes each flush of a running attempt as a chunk named by its zero-padded start offset', async () => {
    const writer = await fx.store.openWriter(fx.k);
    await writer.append(Buffer.from('12345'));
    await writer.flush();
    await writer.append(Buffer.from('678'));
    await writer.flush();
    expect((await readdir(fx.chunkDir())).sort()).toEqual([fx.chunk(0), fx.chunk(5)]);
    expect(await readFile(path.join(fx.chunkDir(), fx.chunk(5)), 'utf8')).toBe('678');
  });

  it('makes a running attempt with no bytes yet visible to stat and list', async () => {
    await fx.store.openWriter(fx.k);
    expect(await fx.store.stat(fx.k)).toMatchObject({ size: 0, complete: false });
    expect(await fx.listAll(fx.store)).toEqual([fx.k]);
    expect(await fx.readAll(fx.store, fx.k)).toHaveLength(0);
  });

  it('removes the chunk folder once the log is finished', async () => {
    await fx.writeLog(fx.k, 'done\n');
    expect(existsSync(fx.chunkDir())).toBe(false);
  });

  it('leaves no temp files behind after writing', async () => {
    const writer = await fx.store.openWriter(fx.k);
    await writer.append(Buffer.from('a'));
    await writer.flush();
    expect(await readdir(fx.chunkDir())).toEqual([fx.chunk(0)]);
    await writer.finish({ size: 1, sha256: sha256(Buffer.from('a')) });
    expect(await readdir(path.dirname(path.join(fx.root, fx.REL)))).toEqual(['attempt=1.log']);
  });

  it('flushes by itself once the buffer reaches chunkSize', async () => {
    const small = new LocalStore({ root: fx.root, chunkSize: 10 });
    const writer = await small.openWriter(fx.k);
    for (let i = 0; i < 5; i++) await writer.append(Buffer.from('abcde'));
    expect(writer.committedOffset).toBe(20);
    expect(writer.offset).toBe(25);
    expect((await readdir(fx.chunkDir())).sort()).toEqual([fx.chunk(0), fx.chunk(10)]);
  });

  it('reads in pieces of at most 1 MiB', async () => {
    await fx.writeLog(fx.k, 'x'.repeat(2.5 * 1024 * 1024));
    const sizes: number[] = [];
    for await (const piece of fx.store.read(fx.k)) sizes.push(piece.bytes.length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(1024 * 1024);
    expect(sizes.length).toBeGreaterThanOrEqual(3);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(2.5 * 1024 * 1024);
  });
});

describe('LocalStore recovery', () => {
  it('ignores temp files when reading, stating and listing', async () => {
    const writer = await fx.store.openWriter(fx.k);
    await writer.append(Buffer.from('real'));
    await writer.flush();
    await writeFile(path.join(fx.chunkDir(), '.tmp-deadbeef'), 'garbage');
    await writeFile(path.join(path.dirname(fx.chunkDir()), '.tmp-cafe'), 'garbage');
    expect((await fx.readAll(fx.store, fx.k)).toString()).toBe('real');
    expect(await fx.store.stat(fx.k)).toMatchObject({ size: 4, complete: false });
    expect(await fx.listAll(fx.store)).toEqual([fx.k]);
  });

  it('deletes stray temp files in the chunk folder when a writer opens', async () => {
    await fx.store.openWriter(fx.k);
    await writeFile(path.join(fx.chunkDir(), '.tmp-deadbeef'), 'half a chunk');
    await fx.store.openWriter(fx.k);
    expect(await readdir(fx.chunkDir())).toEqual([]);
  });

  it('stops the committed log at a gap between chunks and drops what lies past it', async () => {
    await mkdir(fx.chunkDir(), { recursive: true });
    await writeFile(path.join(fx.chunkDir(), fx.chunk(0)), '0123456789');
    await writeFile(path.join(fx.chunkDir(), fx.chunk(15)), 'after a gap');
    expect(await fx.store.stat(fx.k)).toMatchObject({ size: 10, complete: false });
    expect((await fx.readAll(fx.store, fx.k)).toString()).toBe('0123456789');
    const writer = await fx.store.openWriter(fx.k);
    expect(writer.committedOffset).toBe(10);
    expect(await readdir(fx.chunkDir())).toEqual([fx.chunk(0)]);
  });

  it('drops a chunk that overlaps the previous one', async () => {
    await mkdir(fx.chunkDir(), { recursive: true });
    await writeFile(path.join(fx.chunkDir(), fx.chunk(0)), '0123456789');
    await writeFile(path.join(fx.chunkDir(), fx.chunk(5)), 'overlapping');
    const writer = await fx.store.openWriter(fx.k);
    expect(writer.committedOffset).toBe(10);
    expect(await readdir(fx.chunkDir())).toEqual([fx.chunk(0)]);
  });

  describe('with a finished log next to leftover chunks (crash between rename and cleanup)', () => {
    beforeEach(async () => {
      await fx.writeLog(fx.k, 'the final log\n');
      await mkdir(fx.chunkDir());
      await writeFile(path.join(fx.chunkDir(), fx.chunk(0)), 'stale chunk bytes that differ\n');
    });

    it('reads the final file', async () => {
      expect((await fx.readAll(fx.store, fx.k)).toString()).toBe('the final log\n');
    });

    it('stats the final file as complete', async () => {
      expect(await fx.store.stat(fx.k)).toMatchObject({ size: 14, complete: true });
    });

    it('lists the attempt once', async () => {
      expect(await fx.listAll(fx.store)).toEqual([fx.k]);
    });

    it('refuses a new writer and removes the leftover chunks', async () => {
      await expect(fx.store.openWriter(fx.k)).rejects.toBeInstanceOf(ConflictError);
      expect(existsSync(fx.chunkDir())).toBe(false);
    });

    it('deletes both', async () => {
      await fx.store.delete(fx.k);
      expect(existsSync(fx.chunkDir())).toBe(false);
      expect(existsSync(path.join(fx.root, fx.REL))).toBe(false);
    });
  });

  it('fails a flush with NotFoundError when the attempt was deleted under the writer', async () => {
    const writer = await fx.store.openWriter(fx.k);
    await fx.store.delete(fx.k);
    await writer.append(Buffer.from('late'));
    await expect(writer.flush()).rejects.toBeInstanceOf(NotFoundError);
    expect(await fx.store.stat(fx.k)).toBeUndefined();
  });
});

describe('LocalStore.sweep', () => {
  const folder = () => path.dirname(path.join(fx.root, fx.REL));
  const temp = (name: string) => `.tmp-${name}.${randomBytes(8).toString('hex')}`;

  it('removes the temp files killed writes of this log left beside it, and its chunk folder', async () => {
    await fx.writeLog(fx.k, 'the finished log\n');
    const mine = [temp('attempt=1.log'), temp('attempt=1.log')];
    const others = [temp('attempt=2.log'), temp('attempt=1.log.other')];
    for (const name of [...mine, ...others]) await writeFile(path.join(folder(), name), 'half');
    await mkdir(fx.chunkDir());
    await writeFile(path.join(fx.chunkDir(), fx.chunk(0)), 'stale chunk');
    await writeFile(path.join(fx.chunkDir(), temp(fx.chunk(0))), 'half a chunk');

    await fx.store.sweep(fx.k);
    expect((await readdir(folder())).sort()).toEqual([...others, 'attempt=1.log'].sort());
    expect((await fx.readAll(fx.store, fx.k)).toString()).toBe('the finished log\n');
  });

  it('leaves the temp files of a log that is not finished', async () => {
    const writer = await fx.store.openWriter(fx.k);
    await writer.append(Buffer.from('running'));
    await writer.flush();
    const stale = temp('attempt=1.log');
    await writeFile(path.join(folder(), stale), 'half');
    await fx.store.sweep(fx.k);
    expect(await readdir(folder())).toContain(stale);
    expect(await fx.store.stat(fx.k)).toMatchObject({ size: 7, complete: false });
  });

  it('names the temps of a file name too long to take a suffix by its sha256, and sweeps them', async () => {
    const long = new LocalStore({
      root: fx.root,
      pathTemplate: new PathTemplate(
        'dag_id={dag_id}/run_id={run_id}/{task_id}[.{map_index}]-{try_number}.log',
      ),
    });
    const key = attemptKey({ ...fx.k, taskId: 't'.repeat(240) });
    const name = `${'t'.repeat(240)}-1.log`;
    const content = Buffer.from('a log with a long name\n');
    const file = path.join(fx.dir, 'long.log');
    await writeFile(file, content);
    await long.upload(key, { path: file, size: content.length, sha256: sha256(content) });
    const logFolder = path.join(fx.root, 'dag_id=etl', `run_id=${fx.k.runId}`);
    const stale = temp(createHash('sha256').update(name).digest('hex'));
    await writeFile(path.join(logFolder, stale), 'half');

    await long.sweep(key);
    expect(await readdir(logFolder)).toEqual([name]);
  });
});

/**
 * A child process stores a 48 MiB log and is SIGKILLed at k/N of the time the call takes. What it
 * leaves is its temp file, named after the log; the next run stores the log and sweeps, and the
 * folder then holds the log alone.
 */
describe.each([
  ['upload', 5],
  ['finish', 3],
] as const)('LocalStore, a process killed inside %s()', (mode, kills) => {
  let home: string;
  let calibration: number;
  const content = Buffer.alloc(48 * 1024 * 1024, 'a log line of the killed run\n');

  const job = (tryNumber: number): ShipJob => ({
    store: { kind: 'local', root: path.join(home, 'archive') },
    key: attemptKey({ ...fx.k, taskId: mode, tryNumber }),
    mode,
    file: path.join(home, 'killed.log'),
    size: content.length,
    sha256: sha256(content),
    journal: path.join(home, `journal-${tryNumber}.json`),
    pieceBytes: 8 * 1024 * 1024,
  });

  beforeAll(async () => {
    home = await mkdtemp(path.join(tmpdir(), 'tasklog-local-killed-'));
    await writeFile(job(1).file, content);
    const run = await runShipChild(job(1000));
    expect(run.done).toBe(true);
    calibration = run.ms;
    return () => rm(home, { recursive: true, force: true });
  });

  for (let n = 1; n <= kills; n++) {
    it(`leaves only temps named after the log at ${n}/${kills} of the call, which the next run sweeps`, async () => {
      const j = job(n);
      await runShipChild(j, (calibration * n) / kills);
      const logFolder = path.join(
        home,
        'archive',
        'dag_id=etl',
        `run_id=${fx.k.runId}`,
        `task_id=${mode}`,
      );
      const files = async () =>
        (await readdir(logFolder).catch(() => [] as string[])).filter((f) =>
          f.includes(`attempt=${n}.log`),
        );
      for (const name of await files()) {
        expect(name).toMatch(
          new RegExp(`^(\\.tmp-)?attempt=${n}\\.log(\\.chunks|\\.[0-9a-f]{16})?$`),
        );
      }

      const archive = new LocalStore({ root: path.join(home, 'archive') });
      await recoverShip(archive, j);
      expect(await files()).toEqual([`attempt=${n}.log`]);
      expect(sha256(await readFile(path.join(logFolder, `attempt=${n}.log`)))).toBe(j.sha256);
    });
  }
});
