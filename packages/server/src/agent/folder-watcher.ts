import { type FSWatcher, watch } from 'node:fs';
import { join } from 'node:path';

export interface FolderWatcherOptions {
  /** Called with the path of whatever changed in a watched folder (created, written, renamed, removed). */
  onChange: (path: string) => void;
  /** Called once when the system refuses more watches (inotify's `max_user_watches`). */
  onLimit?: (err: Error) => void;
}

/**
 * One `fs.watch` per folder. Node 20 has no recursive `fs.watch` on Linux, so the agent adds a
 * watcher for each folder as it finds it (scans and events), and drops it when the folder goes.
 * Watching only speeds discovery up: events may be lost (overflow, network filesystems that send
 * none), so the agent's periodic scan stays the safety net. When the system refuses more watches
 * (ENOSPC from inotify), watching stops growing and the scan carries on alone.
 */
export class FolderWatcher {
  readonly #watchers = new Map<string, FSWatcher>();
  readonly #options: FolderWatcherOptions;
  #limited = false;
  #closed = false;

  constructor(options: FolderWatcherOptions) {
    this.#options = options;
  }

  /** Folders watched now. */
  get size(): number {
    return this.#watchers.size;
  }

  has(dir: string): boolean {
    return this.#watchers.has(dir);
  }

  /** Watches `dir` unless it is watched already (or watching is at its limit). */
  add(dir: string): void {
    if (this.#closed || this.#limited || this.#watchers.has(dir)) return;
    let watcher: FSWatcher;
    try {
      // Not persistent: the watchers alone must not keep the process alive.
      watcher = watch(dir, { persistent: false }, (_event, name) => {
        // Without a name (some platforms) the folder itself is the best hint.
        this.#options.onChange(name ? join(dir, name.toString()) : dir);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EMFILE') {
        this.#limited = true;
        this.#options.onLimit?.(err as Error);
      }
      return; // ENOENT and the like: the folder went away; the scan sees what is there
    }
    watcher.on('error', () => this.remove(dir));
    this.#watchers.set(dir, watcher);
  }

  remove(dir: string): void {
    const watcher = this.#watchers.get(dir);
    if (!watcher) return;
    this.#watchers.delete(dir);
    watcher.close();
  }

  close(): void {
    this.#closed = true;
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }
}
