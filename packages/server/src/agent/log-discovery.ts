import { lstat, opendir } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { COMPLETION_MARKER_SUFFIX, type PathTemplate } from '@tasklog/core';
import type { Logger } from 'pino';
import { FolderWatcher } from './folder-watcher.js';

/** An attempt log found under the base folder. */
export interface FoundLog {
  /** Absolute path. */
  file: string;
  /** Path under the base folder, as the path template renders it. */
  relativePath: string;
}

export interface LogDiscoveryOptions {
  baseLogFolder: string;
  pathTemplate: PathTemplate;
  logger: Logger;
  /** Logs found through a folder event (a new or changed log, or the files of a new folder). */
  onFound: (logs: FoundLog[]) => Promise<void>;
  /** Whether a change of this log needs no look: it is followed or shipped right now. */
  isBusy: (relativePath: string) => boolean;
}

/**
 * Finds attempt logs under the base folder: `scan()` walks it (watching every folder it passes),
 * and folder events report new and changed logs in between, with their completion markers
 * standing for the log they mark. Only regular files whose path the template accepts are logs.
 */
export class LogDiscovery {
  readonly #base: string;
  readonly #options: LogDiscoveryOptions;
  readonly #watcher: FolderWatcher;
  #closed = false;

  constructor(options: LogDiscoveryOptions) {
    this.#options = options;
    this.#base = resolve(options.baseLogFolder);
    this.#watcher = new FolderWatcher({
      onChange: (path) => this.#onChange(path),
      onLimit: (err) =>
        options.logger.warn(
          { err, watched: this.#watcher.size },
          'the system refuses more folder watches (fs.inotify.max_user_watches); new attempts ' +
            'in unwatched folders are found by the periodic scan only',
        ),
    });
  }

  /** Folders watched now. */
  get watchedFolders(): number {
    return this.#watcher.size;
  }

  /** Every attempt log under the base folder (or under `dir`), watching each folder passed. */
  async scan(dir = this.#base): Promise<FoundLog[]> {
    const found: FoundLog[] = [];
    const stack = [dir];
    while (stack.length && !this.#closed) {
      const folder = stack.pop()!;
      this.#watcher.add(folder);
      try {
        for await (const entry of await opendir(folder)) {
          const child = join(folder, entry.name);
          if (entry.isDirectory()) stack.push(child);
          else if (entry.isFile()) {
            const relativePath = this.relativePath(child);
            if (relativePath) found.push({ file: child, relativePath });
          }
        }
      } catch (err) {
        // A folder removed between listing and reading, or the base not created yet.
        this.#watcher.remove(folder);
        this.#options.logger.debug({ err, dir: folder }, 'cannot list folder');
      }
    }
    return found;
  }

  /** Stops watching; a scan in progress ends at its next folder. */
  close(): void {
    this.#closed = true;
    this.#watcher.close();
  }

  /** The path relative to the base folder if it is an attempt log the template accepts. */
  relativePath(file: string): string | undefined {
    const relativePath = this.#under(file);
    return relativePath && this.#options.pathTemplate.tryParse(relativePath)
      ? relativePath
      : undefined;
  }

  /** `file` relative to the base folder, `/`-separated; undefined outside it. */
  #under(file: string): string | undefined {
    const rel = relative(this.#base, file);
    if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      return undefined;
    }
    return rel.split(sep).join('/');
  }

  #onChange(path: string): void {
    if (this.#closed) return;
    const target = path.endsWith(COMPLETION_MARKER_SUFFIX)
      ? path.slice(0, -COMPLETION_MARKER_SUFFIX.length)
      : path;
    // The common case, a followed log being written, costs one map look-up and no parse.
    const under = this.#under(target);
    if (under && this.#options.isBusy(under)) return;
    const relativePath = this.relativePath(target);
    this.#examine(target, relativePath).catch((err) =>
      this.#options.logger.error({ err, path }, 'cannot take up a changed file'),
    );
  }

  async #examine(path: string, relativePath: string | undefined): Promise<void> {
    const info = await lstat(path).catch(() => undefined);
    if (info?.isDirectory()) {
      // A new folder: its files may have been created before its watcher was.
      await this.#options.onFound(await this.scan(path));
    } else if (info?.isFile() && relativePath) {
      await this.#options.onFound([{ file: path, relativePath }]);
    } else if (!info) {
      this.#watcher.remove(path);
    }
  }
}
