import { type FileHandle, opendir, stat, unlink } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { AttemptKey } from './attempt-key.js';
import { formatAttempt } from './attempt-key.js';
import { acquireAttemptLock, attemptLockPath } from './attempt-lock.js';
import type { Catalog } from './catalog/catalog.js';
import { readCompletionMarker } from './completion-marker.js';
import {
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  InvalidInputError,
  NotFoundError,
} from './errors.js';
import { type AttemptEnd, followLoop, sleep } from './follow-loop.js';
import { openInside } from './fs-paths.js';
import { type Digest, digestFileWithPrefix, digestStored } from './hashing.js';
import type { PathTemplate } from './path-template.js';
import { backoffDelay } from './retry.js';
import { ShipJournal } from './ship-journal.js';
import { transferLog } from './ship-transfer.js';
import type { LogStat, LogStore } from './store.js';

export type { AttemptEnd } from './follow-loop.js';

/** What a Shipper works with. */
export interface ShipperOptions {
  /** The archive logs are shipped to. */
  store: LogStore;
  /** Where each attempt's state, size and sha256 are recorded. */
  catalog: Catalog;
  /** How paths under `baseLogFolder` map to attempt keys (and keys to paths in the store). */
  pathTemplate: PathTemplate;
  /** Folder the workers write logs under; keys are parsed from paths relative to it. */
  baseLogFolder: string;
  /** Folder for journals and locks (small files per attempt being shipped). */
  stateFolder: string;
  /** Remove the local file once the archive copy is verified. */
  deleteLocalCopy: boolean;
  /** Longest wait between tries while the store or catalog is unavailable during a follow (ms); default 10,000. */
  retryMaxIntervalMs?: number;
}

/** What a ship did. */
export interface ShipResult {
  /** The attempt, parsed from the file's path. */
  key: AttemptKey;
  /** The file's path under the base log folder (`/`-separated). */
  relativePath: string;
  /** `shipped`: uploaded now; `already-shipped`: the archive already held this exact log. */
  outcome: 'shipped' | 'already-shipped';
  /** Bytes in the log. */
  size: number;
  /** Lower-case hex sha256 of the log, verified in the store. */
  sha256: string;
  /** Bytes sent in this run (less than size when an interrupted ship was resumed). */
  uploaded: number;
  /** Whether the local file was removed (`deleteLocalCopy`). */
  deletedLocalCopy: boolean;
  /** Size of the shorter complete copy this ship replaced (the log grew after it was finished). */
  replacedSize?: number;
}

/** Options of `Shipper.follow`. */
export interface FollowOptions {
  /** Stops following: what was read is flushed, the attempt stays running and resumable. */
  signal?: AbortSignal;
  /** Flush new bytes to the store at least this often (ms). Default 5000. */
  flushIntervalMs?: number;
  /** How often the file is checked for new bytes (ms). Default 200. */
  pollIntervalMs?: number;
  /** Whether the attempt has finished, and how; default: its completion marker exists. */
  isFinished?: (file: string) => Promise<boolean | AttemptEnd>;
  /** Called after each flush with the store's committed offset. */
  onFlush?: (committedOffset: number) => void;
  /** Called when the store or catalog failed and the follow tries again after `delayMs`. */
  onRetry?: (err: unknown, failures: number, delayMs: number) => void;
  /** The agent serving this attempt's live log, recorded with it. */
  agentUrl?: string;
  /** Renews the attempt's catalog heartbeat this often while it is followed (ms); default 30,000. */
  heartbeatIntervalMs?: number;
  /** When another process ships this attempt: `wait` for it (default) or `fail` with ConflictError. */
  lock?: 'wait' | 'fail';
}

/**
 * How a follow ended: shipped like `shipFile` once the attempt finished, or `stopped` by its signal
 * with `committedOffset` bytes durable in the store (a later follow resumes there).
 */
export type FollowResult =
  | ShipResult
  | {
      /** The attempt, parsed from the file's path. */
      key: AttemptKey;
      /** The file's path under the base log folder. */
      relativePath: string;
      /** The follow was stopped before the attempt finished. */
      outcome: 'stopped';
      /** Bytes durable in the store. */
      committedOffset: number;
    };

/** Options of `Shipper.ship` and `Shipper.shipFile`. */
export interface ShipOptions {
  /** Cancels the ship; a later ship of the file resumes from its journal. */
  signal?: AbortSignal;
  /** Called as bytes are handed to the store: (bytes of this file sent so far, file size). */
  onProgress?: (done: number, total: number) => void;
  /** When another process ships this attempt: `wait` for it (default) or `fail` with ConflictError. */
  lock?: 'wait' | 'fail';
  /** How the attempt ended, recorded with it; default `shipped`. */
  end?: AttemptEnd;
}

async function markerExists(file: string): Promise<boolean> {
  return (await readCompletionMarker(file)) !== undefined;
}

/**
 * One-shot shipper of finished logs: local file → store → verification → catalog → (optional)
 * local delete. Every step is idempotent, so running it again after a crash at any point ends
 * in the same state as an uninterrupted run, and shipping a shipped log again is a no-op.
 */
export class Shipper {
  private readonly base: string;

  constructor(private readonly options: ShipperOptions) {
    this.base = resolve(options.baseLogFolder);
  }

  /**
   * Whether an earlier ship or follow of the log at `file` left its journal or lock behind (it was
   * killed): then a ship must run to finish and clean up, even if the catalog says shipped.
   */
  async interrupted(file: string): Promise<boolean> {
    const { relativePath } = this.locate(file);
    const { stateFolder } = this.options;
    const paths = [
      ShipJournal.pathOf(stateFolder, relativePath),
      attemptLockPath(stateFolder, relativePath),
    ];
    for (const path of paths) {
      if (
        await stat(path).then(
          () => true,
          () => false,
        )
      )
        return true;
    }
    return false;
  }

  /** The URL of the store this shipper archives to. */
  get storeUrl(): string {
    return this.options.store.url;
  }

  /** Finds finished logs at `path` (a log file, or a folder under the base log folder). */
  async *findLogs(path: string, signal?: AbortSignal): AsyncGenerator<string> {
    const abs = resolve(path);
    const info = await stat(abs).catch((cause: NodeJS.ErrnoException) => {
      if (cause.code === 'ENOENT')
        throw new NotFoundError(`no such file or folder: ${path}`, { cause });
      throw new InvalidInputError(`cannot read ${path}: ${cause.message}`, { cause });
    });
    this.relativeToBase(abs);
    if (info.isFile()) {
      yield abs;
      return;
    }
    const stack = [abs];
    while (stack.length) {
      signal?.throwIfAborted();
      const dir = stack.pop()!;
      const entries: string[] = [];
      for await (const entry of await opendir(dir)) {
        const child = join(dir, entry.name);
        if (entry.isDirectory()) stack.push(child);
        else if (entry.isFile() && this.options.pathTemplate.tryParse(this.relativeToBase(child))) {
          entries.push(child);
        }
      }
      yield* entries.sort();
    }
  }

  /** Ships every log found at each path, one after another; stops at the first failure. */
  async *ship(paths: string[], options: ShipOptions = {}): AsyncGenerator<ShipResult> {
    for (const path of paths) {
      for await (const file of this.findLogs(path, options.signal)) {
        yield await this.shipFile(file, options);
      }
    }
  }

  /**
   * Ships one finished log file, holding the attempt's lock (see `ShipOptions.lock`). A log that
   * grew since it was archived complete (same bytes, more of them) replaces the archived copy;
   * different bytes are a ConflictError.
   */
  async shipFile(file: string, options: ShipOptions = {}): Promise<ShipResult> {
    const { abs, relativePath, key } = this.locate(file);
    const lock = await acquireAttemptLock(this.options.stateFolder, relativePath, {
      mode: options.lock ?? 'wait',
      signal: options.signal,
    });
    try {
      const journal = await ShipJournal.open(
        this.options.stateFolder,
        relativePath,
        this.options.store.url,
      );
      return await this.#ship(abs, relativePath, key, journal, options);
    } finally {
      await lock.release();
    }
  }

  /**
   * Ships a log while it is being written: new bytes go to the store's writer as they appear
   * and are flushed (made durable and readable) every `flushIntervalMs` or whenever the writer's
   * buffer fills, so a worker that dies loses at most the last interval. Resumes after a crash
   * from the store's committed offset. While the store or catalog is unavailable it keeps the
   * local file as the buffer and tries again (backoff capped at `retryMaxIntervalMs`) for as long
   * as it runs. When the attempt finishes, the log is finished, verified and recorded like
   * `shipFile`; when `signal` aborts first, it returns `stopped`.
   */
  async follow(file: string, options: FollowOptions = {}): Promise<FollowResult> {
    const { store, catalog, stateFolder } = this.options;
    const { signal } = options;
    const { abs, relativePath, key } = this.locate(file);
    const retryMaxIntervalMs = this.options.retryMaxIntervalMs ?? 10_000;
    const lock = await acquireAttemptLock(stateFolder, relativePath, {
      mode: options.lock ?? 'wait',
      signal,
    });
    const heartbeat = setInterval(() => {
      // Only heartbeatAt: writing `state` here could race with the ship's own updates.
      catalog.upsert(key, { relativePath, heartbeatAt: new Date() }).catch(() => undefined);
    }, options.heartbeatIntervalMs ?? 30_000);
    heartbeat.unref();
    try {
      const journal = await ShipJournal.open(stateFolder, relativePath, store.url);
      const loop = await followLoop({
        store,
        key,
        file: abs,
        root: this.base,
        journal,
        flushIntervalMs: options.flushIntervalMs ?? 5000,
        pollIntervalMs: options.pollIntervalMs ?? 200,
        retryMaxIntervalMs,
        isFinished: options.isFinished ?? markerExists,
        signal,
        onFlush: options.onFlush,
        onRetry: options.onRetry,
        register: async () => {
          await catalog.upsert(key, {
            relativePath,
            state: 'running',
            storeUrl: store.url,
            heartbeatAt: new Date(),
            ...(options.agentUrl !== undefined ? { agentUrl: options.agentUrl } : {}),
          });
        },
      });
      if ('stopped' in loop) {
        return { key, relativePath, outcome: 'stopped', committedOffset: loop.committedOffset };
      }
      // The store holds the complete log: verification, catalog and local copy as for any ship,
      // retried through an outage like the follow itself.
      for (let failures = 1; ; failures++) {
        try {
          return await this.#ship(abs, relativePath, key, journal, { end: loop.end });
        } catch (err) {
          if (!(err instanceof BackendUnavailableError)) throw err;
          const delay = backoffDelay(Math.min(failures, 30), {
            baseDelayMs: 250,
            maxDelayMs: retryMaxIntervalMs,
          });
          options.onRetry?.(err, failures, delay);
          await sleep(delay, signal);
          if (signal?.aborted) {
            const remote = await store.stat(key).catch(() => undefined);
            return { key, relativePath, outcome: 'stopped', committedOffset: remote?.size ?? 0 };
          }
        }
      }
    } finally {
      clearInterval(heartbeat);
      await lock.release();
    }
  }

  /**
   * The ship itself; the caller holds the attempt's lock. The log is opened once, without
   * following links (`openInside`), and its size, hash and upload all read that one handle.
   */
  async #ship(
    abs: string,
    relativePath: string,
    key: AttemptKey,
    journal: ShipJournal,
    options: ShipOptions,
  ): Promise<ShipResult> {
    const fh = await openInside(this.base, abs);
    try {
      return await this.#shipOpen(abs, fh, relativePath, key, journal, options);
    } finally {
      await fh.close();
    }
  }

  async #shipOpen(
    abs: string,
    fh: FileHandle,
    relativePath: string,
    key: AttemptKey,
    journal: ShipJournal,
    options: ShipOptions,
  ): Promise<ShipResult> {
    const { store, catalog } = this.options;
    const { signal } = options;
    const mtimeMs = (await fh.stat()).mtimeMs;
    const marker = await readCompletionMarker(abs);
    const recordEnd = {
      relativePath,
      state: options.end?.state ?? ('shipped' as const),
      storeUrl: store.url,
      ...(options.end?.airflowState !== undefined
        ? { airflowState: options.end.airflowState }
        : {}),
      ...(marker?.exitCode != null ? { exitCode: marker.exitCode } : {}),
    };

    // A journal of an earlier, interrupted ship of the same file: resume after its last phase.
    let ship = journal.ship?.mtimeMs === mtimeMs ? journal.ship : undefined;
    let uploaded = 0;
    let replacedSize: number | undefined;
    const done = (outcome: ShipResult['outcome'], deletedLocalCopy: boolean): ShipResult => ({
      key,
      relativePath,
      outcome,
      size: ship!.size,
      sha256: ship!.sha256,
      uploaded,
      deletedLocalCopy,
      ...(replacedSize !== undefined ? { replacedSize } : {}),
    });

    if (!ship) {
      const remote = await store.stat(key, { signal });
      const archived = remote?.complete ? remote : undefined;
      const digest = await digestFileWithPrefix(fh, archived?.size, signal);
      ship = { size: digest.size, sha256: digest.sha256, mtimeMs, phase: 'uploading' };
      if (archived) {
        const archivedSha256 = await this.#archivedSha256(key, archived, signal);
        const same = archived.size === digest.size && archivedSha256 === digest.sha256;
        const record = same ? await catalog.get(key) : undefined;
        if (
          record?.storeUrl === store.url &&
          record.sha256 === digest.sha256 &&
          (record.state === 'shipped' || record.state === 'abandoned')
        ) {
          // Shipped and recorded before (perhaps by a run killed before it cleaned up).
          if (record.state !== recordEnd.state || options.end?.airflowState !== undefined) {
            await catalog.upsert(key, recordEnd);
          }
          await this.#sweep(key, journal, signal);
          const deleted = await this.deleteLocal(abs);
          await journal.remove();
          return done('already-shipped', deleted);
        }
        // Complete but not recorded (a follow just finished it, or a ship died before recording):
        // the phases below find nothing to upload, then verify and record it.
        if (!same && (archived.size > digest.size || digest.prefixSha256 !== archivedSha256)) {
          throw new ConflictError(
            `${formatAttempt(key)} is already complete in ${store.url} with other content ` +
              `(${archived.size} bytes, sha256 ${archivedSha256}; local ${digest.size} bytes, ` +
              `sha256 ${digest.sha256}); delete the archived copy first to replace it`,
          );
        }
        // The same bytes and more: the log grew after it was finished.
        if (!same) {
          ship.replace = true;
          replacedSize = archived.size;
        }
      }
      ship = {
        ...ship,
        ...(journal.ship?.upload !== undefined ? { upload: journal.ship.upload } : {}),
      };
      await journal.setShip(ship);
    }

    if (ship.phase === 'uploading') {
      await catalog.upsert(key, {
        relativePath,
        state: 'shipping',
        size: ship.size,
        sha256: ship.sha256,
        storeUrl: store.url,
      });
      uploaded = await transferLog(store, { path: abs, handle: fh }, key, ship, journal, options);
      await this.verify(key, ship, signal);
      ship = { ...ship, phase: 'verified' };
      await journal.setShip(ship);
    }
    if (ship.phase === 'verified') {
      await catalog.upsert(key, {
        ...recordEnd,
        size: ship.size,
        sha256: ship.sha256,
        shippedAt: new Date(),
      });
      ship = { ...ship, phase: 'recorded' };
      await journal.setShip(ship);
    }
    await this.#sweep(key, journal, signal);
    const deleted = await this.deleteLocal(abs);
    await journal.remove();
    return done('shipped', deleted);
  }

  /** The sha256 of a complete archived log: vouched for by the store, or else read back. */
  async #archivedSha256(key: AttemptKey, archived: LogStat, signal?: AbortSignal): Promise<string> {
    if (archived.sha256) return archived.sha256;
    const read = await digestStored(this.options.store, key, signal);
    if (read.size !== archived.size) {
      throw new IntegrityError(
        `${formatAttempt(key)} in ${this.options.store.url} reads back as ${read.size} bytes, its size is ${archived.size}`,
      );
    }
    return read.sha256;
  }

  /** Removes what interrupted writers and uploads left beside the complete log. */
  async #sweep(key: AttemptKey, journal: ShipJournal, signal?: AbortSignal): Promise<void> {
    const { store } = this.options;
    if (!store.sweep) return;
    const states = journal.storeStates;
    if (states.length === 0) await store.sweep(key, { signal });
    for (const state of states) await store.sweep(key, { signal, journal: state });
  }

  /** The archive copy must have the local size and sha256 before anything trusts it. */
  private async verify(key: AttemptKey, expected: Digest, signal?: AbortSignal): Promise<void> {
    const { store } = this.options;
    const remote = await store.stat(key, { signal });
    if (!remote?.complete || remote.size !== expected.size) {
      throw new IntegrityError(
        `verification failed for ${formatAttempt(key)} in ${store.url}: expected a complete log of ` +
          `${expected.size} bytes, found ${remote ? `${remote.size} bytes, complete=${remote.complete}` : 'nothing'}`,
      );
    }
    const actual = remote.sha256 ?? (await digestStored(store, key, signal)).sha256;
    if (actual !== expected.sha256) {
      throw new IntegrityError(
        `verification failed for ${formatAttempt(key)} in ${store.url}: sha256 ${actual}, expected ${expected.sha256}`,
      );
    }
  }

  private async deleteLocal(file: string): Promise<boolean> {
    if (!this.options.deleteLocalCopy) return false;
    try {
      await unlink(file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw new InvalidInputError(`cannot delete the local copy ${file}`, { cause: err });
    }
  }

  private relativeToBase(abs: string): string {
    const rel = relative(this.base, abs);
    if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
      throw new InvalidInputError(
        `${abs} is not under the base log folder ${this.base}; set core.base_log_folder ` +
          '(TASKLOG__CORE__BASE_LOG_FOLDER) to the folder your workers write logs to',
      );
    }
    return rel.split(sep).join('/');
  }

  /** The absolute path, its relative path under the base folder, and its attempt key. */
  private locate(file: string): { abs: string; relativePath: string; key: AttemptKey } {
    const abs = resolve(file);
    const relativePath = this.relativeToBase(abs);
    return { abs, relativePath, key: this.options.pathTemplate.parse(relativePath) };
  }
}
