import type { AttemptKey } from './attempt-key.js';
import { formatAttempt } from './attempt-key.js';
import { BackendUnavailableError, ConflictError, IntegrityError } from './errors.js';
import { openInside } from './fs-paths.js';
import { digestFile } from './hashing.js';
import { backoffDelay } from './retry.js';
import type { ShipJournal } from './ship-journal.js';
import type { LogStore, LogWriter } from './store.js';

/** How an attempt ended, recorded with it in the catalog. */
export interface AttemptEnd {
  /** `shipped` (the default), or `abandoned`: its writer went quiet without saying it finished. */
  state?: 'shipped' | 'abandoned';
  /** Airflow's state of the try, where known. */
  airflowState?: string | null;
}

export interface FollowLoopOptions {
  store: LogStore;
  key: AttemptKey;
  /** Absolute path of the local log. */
  file: string;
  /** The folder the log must really be inside (it is opened once, without following links). */
  root: string;
  journal: ShipJournal;
  flushIntervalMs: number;
  pollIntervalMs: number;
  retryMaxIntervalMs: number;
  isFinished: (file: string) => Promise<boolean | AttemptEnd>;
  /** Stops the loop: what was read is flushed first (if the store answers). */
  signal?: AbortSignal;
  /** Runs (and is retried) before the first store call, e.g. recording the attempt `running`. */
  register?: () => Promise<void>;
  onFlush?: (committedOffset: number) => void;
  onRetry?: (err: unknown, failures: number, delayMs: number) => void;
}

export type FollowLoopResult = { end: AttemptEnd } | { stopped: true; committedOffset: number };

/**
 * Appends a growing local log to the store's writer until the attempt finishes (then the
 * writer's `finish` makes it one complete log) or `signal` stops it.
 *
 * The local file is the buffer: while the store (or catalog) is unavailable, the writer is
 * dropped and opened again after a backoff (full jitter, capped at `retryMaxIntervalMs`), for as
 * long as the loop runs. A reopened writer reports what the store really holds
 * (`committedOffset`), and reading resumes there, so an outage costs no byte and doubles none.
 * Only BackendUnavailableError is retried: a conflict or an integrity failure is not an outage.
 *
 * A log the store already holds complete (it grew after it was finished, e.g. a deferred task
 * resumed) cannot take more chunks: it is watched until it finishes again, and the ship that
 * follows replaces the archived copy.
 */
export async function followLoop(options: FollowLoopOptions): Promise<FollowLoopResult> {
  const { store, key, file, signal, onFlush } = options;
  const fh = await openInside(options.root, file);
  let writer: LogWriter | undefined;
  let registered = false;
  /** The store holds a complete, shorter copy; it is replaced once the log finishes again. */
  let archivedComplete = false;
  let committed = 0;
  let pos = 0;
  let failures = 0;
  let lastFlush = Date.now();
  /** Flush intervals passed, and the one during which an unfinished last line was first held back. */
  let ticks = 0;
  let heldSinceTick: number | undefined;
  /** Appends what the file holds past `pos` (only whole lines unless `all`). */
  const appendNew = async (all: boolean): Promise<{ appended: number; holding: boolean }> => {
    let appended = 0;
    for (;;) {
      // A fresh buffer per read: the writer keeps what it is given until it flushes.
      const buf = Buffer.allocUnsafe(READ_BYTES);
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return { appended, holding: false };
      const take = all ? bytesRead : wholeLines(buf, bytesRead);
      if (take > 0) {
        await writer!.append(buf.subarray(0, take));
        pos += take;
        appended += take;
      }
      if (take < bytesRead) return { appended, holding: true };
    }
  };
  try {
    for (;;) {
      try {
        if (!registered) {
          await options.register?.();
          registered = true;
        }
        if (!writer && !archivedComplete) {
          const remote = await store.stat(key);
          if (remote?.complete) {
            archivedComplete = true;
            committed = remote.size;
          } else {
            writer = await store.openWriter(key, { journal: options.journal.writerSlot() });
            pos = committed = writer.committedOffset;
            const { size } = await fh.stat();
            if (size < pos) {
              throw new ConflictError(
                `${store.url} holds ${pos} bytes of ${formatAttempt(key)} but ${file} has only ` +
                  `${size}; delete the archived chunks to ship it again`,
              );
            }
          }
          failures = 0;
        }
        // Checked before reading, so that once it says finished, the read below sees every byte.
        const end = await options.isFinished(file);
        if (writer) {
          // An unfinished last line waits for its end (until the next flush at most), so
          // flushes — and the chunks of blob stores — end on line ends wherever a line fits in
          // one read. Everything goes once the attempt ended or the follow stops.
          const { appended, holding } = await appendNew(Boolean(end) || signal?.aborted === true);
          // A line held back after new whole lines went is a new line: its wait starts now.
          if (!holding) heldSinceTick = undefined;
          else if (appended > 0 || heldSinceTick === undefined) heldSinceTick = ticks;
        }
        if (end) {
          if (writer) {
            const digest = await digestFile(fh);
            if (digest.size !== pos) {
              throw new IntegrityError(
                `${file} changed after its attempt finished (${digest.size} bytes, read ${pos})`,
              );
            }
            await writer.finish(digest);
            writer = undefined;
          }
          return { end: end === true ? {} : end };
        }
        const due = Date.now() - lastFlush >= options.flushIntervalMs;
        if (due) ticks++;
        // A line held back through a whole flush interval, or when the follow stops, goes now.
        const release = heldSinceTick !== undefined && heldSinceTick < ticks - 1;
        if (writer && (signal?.aborted || (due && release))) {
          await appendNew(true);
          heldSinceTick = undefined;
        }
        if (writer && (signal?.aborted || (due && writer.offset > writer.committedOffset))) {
          committed = await writer.flush();
          failures = 0;
          onFlush?.(committed);
        }
        if (due) lastFlush = Date.now();
        if (signal?.aborted) return { stopped: true, committedOffset: committed };
        await sleep(options.pollIntervalMs, signal);
      } catch (err) {
        if (!(err instanceof BackendUnavailableError)) throw err;
        // The unflushed bytes are dropped with the writer; they are still in the file.
        await writer?.abort().catch(() => undefined);
        writer = undefined;
        failures++;
        const delay = backoffDelay(Math.min(failures, 30), {
          baseDelayMs: 250,
          maxDelayMs: options.retryMaxIntervalMs,
        });
        options.onRetry?.(err, failures, delay);
        await sleep(delay, signal);
        if (signal?.aborted) return { stopped: true, committedOffset: committed };
      }
    }
  } finally {
    await writer?.abort().catch(() => undefined);
    await fh.close();
  }
}

const READ_BYTES = 1 << 20;

/**
 * How many of the `read` bytes in `buf` end on a line end: up to the last `\n`, or all of them
 * when a full read holds no `\n` (a line longer than one read is cut where it must be).
 */
function wholeLines(buf: Buffer, read: number): number {
  const nl = buf.lastIndexOf(0x0a, read - 1);
  if (nl >= 0) return nl + 1;
  return read === buf.length ? read : 0;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((done) => {
    if (signal?.aborted) return done();
    const timer = setTimeout(finish, ms);
    signal?.addEventListener('abort', finish, { once: true });
    function finish() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      done();
    }
  });
}
