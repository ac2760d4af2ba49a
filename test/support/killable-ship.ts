import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { beforeAll, expect, it } from 'vitest';
import type { AttemptKey } from '../../packages/core/src/attempt-key.js';
import { ConflictError } from '../../packages/core/src/errors.js';
import { digestStored } from '../../packages/core/src/hashing.js';
import type { LogStore } from '../../packages/core/src/store.js';
import { fileJournal } from './file-journal.js';
import { sha256 } from './hash.js';
import type { StoreSpec } from './job-store.js';

/** What `ship-child.ts` does: store the log in `file` as `key`, through a writer or upload(). */
export interface ShipJob {
  store: StoreSpec;
  key: AttemptKey;
  mode: 'finish' | 'upload';
  /** The finished log, and its size and sha256. */
  file: string;
  size: number;
  sha256: string;
  /** Path of the journal file (the shipper keeps one per attempt). */
  journal: string;
  /** `finish` mode: bytes appended (and flushed as one chunk) at a time. */
  pieceBytes: number;
}

const CHILD = fileURLToPath(new URL('./ship-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** How a child run ended: `done` if the call under test returned before the kill. */
export interface ChildRun {
  done: boolean;
  /** Milliseconds from `ready` until the call returned or the kill. */
  ms: number;
}

/**
 * Runs `job` in a child process and, when `killAfterMs` is given, SIGKILLs it that long after it
 * printed `ready` (the start of finish()/upload()), as a crashing worker would die: no
 * finally-blocks, no flushing, sockets cut.
 */
export async function runShipChild(job: ShipJob, killAfterMs?: number): Promise<ChildRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(job)], {
    cwd: ROOT,
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  const lines = createInterface({ input: child.stdout });
  let readyAt = 0;
  let doneAt = 0;
  const ready = new Promise<void>((resolve) => {
    lines.on('line', (line) => {
      if (line === 'ready') {
        readyAt = performance.now();
        resolve();
      }
      if (line === 'done') doneAt = performance.now();
    });
  });
  const started = await Promise.race([ready.then(() => true), exited.then(() => false)]);
  if (!started) throw new Error(`ship child exited before it was ready:\n${stderr}`);
  if (killAfterMs !== undefined) {
    await Promise.race([sleep(killAfterMs), exited]);
    child.kill('SIGKILL');
  }
  const [code, signal] = await exited;
  if (signal !== 'SIGKILL' && code !== 0) {
    throw new Error(`ship child failed with ${code}:\n${stderr}`);
  }
  const done = doneAt > 0;
  return { done, ms: (done ? doneAt : performance.now()) - readyAt };
}

/**
 * What the next run does after a crash, as the shipper does it: a log that is not complete yet is
 * stored again from the journal (the next writer resumes at the committed offset; upload() resumes
 * its upload), then `sweep()` removes whatever was left beside the complete log.
 */
export async function recoverShip(store: LogStore, job: ShipJob): Promise<void> {
  const journal = fileJournal(job.journal);
  const expected = { size: job.size, sha256: job.sha256 };
  const stat = await store.stat(job.key);
  if (!stat?.complete) {
    try {
      if (job.mode === 'upload') {
        await store.upload!(job.key, { path: job.file, ...expected }, { journal });
      } else {
        const log = await readFile(job.file);
        const writer = await store.openWriter(job.key, { journal });
        await writer.append(log.subarray(writer.committedOffset));
        await writer.finish(expected);
      }
    } catch (err) {
      // A request the killed process had in flight (a compose, a CompleteMultipartUpload) can
      // land after this run looked: the log is complete then, as a shipper's retry would see.
      if (!(err instanceof ConflictError) || !(await store.stat(job.key))?.complete) throw err;
    }
  }
  await store.sweep!(job.key, { journal });
}

/** The journal's state after the recovery: null or absent once nothing is left open. */
export async function journalState(job: ShipJob): Promise<unknown> {
  return (await fileJournal(job.journal).load()) ?? null;
}

/** What `itRecoversFromKills` needs of one store configuration. */
export interface KilledShips {
  /** Tests, each killing one child: the k-th at k/kills of the time the call takes. */
  kills: number;
  /** The finished log the children store. */
  content: Buffer;
  /** The job of try `tryNumber` (its own attempt and journal), without the log's size and sha256. */
  job(tryNumber: number): Omit<ShipJob, 'size' | 'sha256'>;
  /** Runs first, before the log file is written (e.g. to make the store's options). */
  before?(): void | Promise<void>;
  /** The store the next run opens to recover. */
  open(): LogStore;
  /** What the store must hold for the job after the recovery, as its backend sees it. */
  check(store: LogStore, job: ShipJob): Promise<void>;
}

/**
 * Declares the kill tests of one store configuration. A first child runs the call to the end,
 * which measures how long it takes; then each test SIGKILLs a child part of the way in and
 * recovers as the next run would (`recoverShip`). Afterwards the store must hold the complete log
 * byte for byte, the journal must be empty, and `check` sees nothing else left behind.
 */
export function itRecoversFromKills(ships: KilledShips): void {
  const digest = { size: ships.content.length, sha256: sha256(ships.content) };
  const job = (tryNumber: number): ShipJob => ({ ...ships.job(tryNumber), ...digest });
  let calibration: number;

  beforeAll(async () => {
    await ships.before?.();
    await writeFile(job(1).file, ships.content);
    const run = await runShipChild(job(1000));
    expect(run.done).toBe(true);
    calibration = run.ms;
  });

  for (let k = 1; k <= ships.kills; k++) {
    it(`is resumed after a kill at ${k}/${ships.kills} of the call to one verified object and nothing else`, async () => {
      const j = job(k);
      await runShipChild(j, (calibration * k) / ships.kills);
      const store = ships.open();
      await recoverShip(store, j);

      expect(await digestStored(store, j.key)).toEqual(digest);
      const stat = await store.stat(j.key);
      expect(stat).toMatchObject({ size: j.size, complete: true });
      // A kill between completing the object and checking it leaves it without sha256.
      expect([undefined, j.sha256]).toContain(stat?.sha256);
      expect(await journalState(j)).toBeNull();
      await ships.check(store, j);
    });
  }
}
