import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

/**
 * Wakes a reader waiting at the end of a growing log as soon as it changes. One `fs.watch` on
 * the log's folder (inotify on Linux) reports both the log growing and its completion marker
 * appearing; a poll timer stays as the fallback for file systems that send no events (NFS, some
 * FUSE mounts) and for a watch that fails.
 */
export class FileChanges {
  readonly #names: ReadonlySet<string>;
  #watcher: FSWatcher | undefined;
  /** A change arrived since the last `next()`: the next one returns at once. */
  #changed = false;
  #wake: (() => void) | undefined;

  /** Watches `file` and the files named `file + suffix` for each of `siblings`. */
  constructor(file: string, siblings: readonly string[] = []) {
    const name = basename(file);
    this.#names = new Set([name, ...siblings.map((s) => name + s)]);
    try {
      this.#watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
        if (changed === null || this.#names.has(String(changed))) this.#notify();
      });
      this.#watcher.on('error', () => this.close());
    } catch {
      this.#watcher = undefined; // no events here: the poll alone
    }
  }

  /** Whether events arrive (else every wait lasts the whole poll interval). */
  get watching(): boolean {
    return this.#watcher !== undefined;
  }

  /**
   * Resolves at the first change since the previous call, or after `pollMs` at the latest;
   * rejects with the signal's reason once it aborts.
   */
  next(pollMs: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.#changed) {
      this.#changed = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const finish = (err?: unknown) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#wake = undefined;
        this.#changed = false;
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = () => finish(signal.reason);
      const timer = setTimeout(finish, pollMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#wake = finish;
    });
  }

  close(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
  }

  #notify(): void {
    this.#changed = true;
    this.#wake?.();
  }
}
