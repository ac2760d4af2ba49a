import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, opendir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { AttemptKey } from './attempt-key.js';
import { formatAttempt } from './attempt-key.js';
import type { Catalog } from './catalog/catalog.js';
import { ConflictError, IntegrityError, InvalidInputError, NotFoundError } from './errors.js';
import { type Digest, digestFile, digestStored } from './hashing.js';
import type { PathTemplate } from './path-template.js';
import type { LogStore, UploadJournal } from './store.js';

export interface ShipperOptions {
  store: LogStore;
  catalog: Catalog;
  pathTemplate: PathTemplate;
  /** Folder the workers write logs under; keys are parsed from paths relative to it. */
  baseLogFolder: string;
  /** Folder for journals (one small JSON file per attempt being shipped). */
  stateFolder: string;
  /** Remove the local file once the archive copy is verified. */
  deleteLocalCopy: boolean;
}

export interface ShipResult {
  key: AttemptKey;
  relativePath: string;
  /** `shipped`: uploaded now; `already-shipped`: the archive already held this exact log. */
  outcome: 'shipped' | 'already-shipped';
  size: number;
  sha256: string;
  /** Bytes sent in this run (less than size when an interrupted ship was resumed). */
  uploaded: number;
  deletedLocalCopy: boolean;
}

/**
 * A running attempt is finished when this file appears next to its log (`attempt=1.log.done`):
 * the task runner (or `tasklog run`) creates it after the last byte is written.
 */
export const COMPLETION_MARKER_SUFFIX = '.done';

export interface FollowOptions {
  /** Stops following: what was read is flushed, the attempt stays running and resumable. */
  signal?: AbortSignal;
  /** Flush new bytes to the store at least this often (ms). Default 5000. */
  flushIntervalMs?: number;
  /** How often the file is checked for new bytes (ms). Default 200. */
  pollIntervalMs?: number;
  /** Whether the attempt has finished; default: its completion marker exists. */
  isFinished?: (file: string) => Promise<boolean>;
  /** Called after each flush with the store's committed offset. */
  onFlush?: (committedOffset: number) => void;
}

export type FollowResult =
  | ShipResult
  | { key: AttemptKey; relativePath: string; outcome: 'stopped'; committedOffset: number };

export interface ShipOptions {
  signal?: AbortSignal;
  /** Called as bytes are handed to the store: (bytes of this file sent so far, file size). */
  onProgress?: (done: number, total: number) => void;
}

async function markerExists(file: string): Promise<boolean> {
  return stat(`${file}${COMPLETION_MARKER_SUFFIX}`).then(
    () => true,
    () => false,
  );
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
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

/**
 * The phases a ship goes through, in order. The journal records the last one reached so an
 * interrupted ship resumes after it; the store's own committedOffset says where upload resumes.
 */
type Phase = 'uploading' | 'verified' | 'recorded';

interface Journal {
  version: 1;
  relativePath: string;
  storeUrl: string;
  size: number;
  sha256: string;
  mtimeMs: number;
  phase: Phase;
  /** The store's own resume state for `upload()` (e.g. an S3 multipart upload id and parts). */
  upload?: unknown;
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

  /** Ships one finished log file. */
  async shipFile(file: string, options: ShipOptions = {}): Promise<ShipResult> {
    const { store, catalog, pathTemplate } = this.options;
    const { signal } = options;
    const abs = resolve(file);
    const relativePath = this.relativeToBase(abs);
    const key = pathTemplate.parse(relativePath);
    const journalPath = this.journalPath(relativePath);

    const mtimeMs = (await stat(abs)).mtimeMs;
    let journal = await this.readJournal(journalPath);
    if (
      journal &&
      (journal.storeUrl !== store.url ||
        journal.mtimeMs !== mtimeMs ||
        journal.relativePath !== relativePath)
    ) {
      journal = undefined; // the file or the destination changed since: start over
    }
    const digest: Digest = journal ?? (await digestFile(abs, signal));
    const done = (outcome: ShipResult['outcome'], uploaded: number, deletedLocalCopy: boolean) => ({
      key,
      relativePath,
      outcome,
      size: digest.size,
      sha256: digest.sha256,
      uploaded,
      deletedLocalCopy,
    });

    const record = await catalog.get(key);
    if (!journal && record?.state === 'shipped' && record.storeUrl === store.url) {
      if (record.sha256 !== digest.sha256) {
        throw new ConflictError(
          `${formatAttempt(key)} was already shipped to ${store.url} with different content ` +
            `(sha256 ${record.sha256}, local ${digest.sha256}); delete the archived copy first to replace it`,
        );
      }
      const remote = await store.stat(key, { signal });
      if (remote?.complete && remote.size === digest.size) {
        const deleted = await this.deleteLocal(abs);
        return done('already-shipped', 0, deleted);
      }
      // The catalog says shipped but the archive disagrees: ship again.
    }

    journal = {
      version: 1,
      relativePath,
      storeUrl: store.url,
      ...digest,
      mtimeMs,
      phase: 'uploading',
      ...journal,
    };
    await this.writeJournal(journalPath, journal);

    let uploaded = 0;
    if (journal.phase === 'uploading') {
      await catalog.upsert(key, {
        relativePath,
        state: 'shipping',
        size: digest.size,
        sha256: digest.sha256,
        storeUrl: store.url,
      });
      const saveUpload = async (upload: unknown) => {
        journal = { ...journal!, upload };
        await this.writeJournal(journalPath, journal);
      };
      uploaded = await this.transfer(abs, key, digest, options, {
        load: async () => journal?.upload,
        save: saveUpload,
      });
      await this.verify(key, digest, signal);
      journal = { ...journal, phase: 'verified' };
      await this.writeJournal(journalPath, journal);
    }
    if (journal.phase === 'verified') {
      await catalog.upsert(key, {
        relativePath,
        state: 'shipped',
        size: digest.size,
        sha256: digest.sha256,
        storeUrl: store.url,
        shippedAt: new Date(),
      });
      journal = { ...journal, phase: 'recorded' };
      await this.writeJournal(journalPath, journal);
    }
    const deleted = await this.deleteLocal(abs);
    await unlink(journalPath).catch(() => {});
    return done('shipped', uploaded, deleted);
  }

  /**
   * Ships a log while it is being written: new bytes go to the store's writer as they appear
   * and are flushed (made durable and readable) every `flushIntervalMs` or whenever the writer's
   * buffer fills, so a worker that dies loses at most the last interval. Resumes after a crash
   * from the store's committed offset. When the attempt finishes, the log is finished, verified
   * and recorded like `shipFile`; when `signal` aborts first, it returns `stopped`.
   */
  async follow(file: string, options: FollowOptions = {}): Promise<FollowResult> {
    const { store, catalog, pathTemplate } = this.options;
    const { signal, onFlush } = options;
    const flushIntervalMs = options.flushIntervalMs ?? 5000;
    const pollIntervalMs = options.pollIntervalMs ?? 200;
    const isFinished = options.isFinished ?? markerExists;
    const abs = resolve(file);
    const relativePath = this.relativeToBase(abs);
    const key = pathTemplate.parse(relativePath);

    const remote = await store.stat(key);
    if (remote?.complete) return this.shipFile(abs); // finished by an earlier run
    await catalog.upsert(key, { relativePath, state: 'running', storeUrl: store.url });
    const writer = await store.openWriter(key);
    const fh = await open(abs, 'r');
    try {
      let pos = writer.committedOffset;
      const size = (await fh.stat()).size;
      if (size < pos) {
        throw new ConflictError(
          `${store.url} holds ${pos} bytes of ${formatAttempt(key)} but ${abs} has only ${size}; ` +
            'delete the archived chunks to ship it again',
        );
      }
      let lastFlush = Date.now();
      for (;;) {
        // Checked before reading, so that once it says finished, the read below sees every byte.
        const finished = await isFinished(abs);
        for (;;) {
          // A fresh buffer per read: the writer keeps what it is given until it flushes.
          const buf = Buffer.allocUnsafe(1 << 20);
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) break;
          await writer.append(buf.subarray(0, bytesRead));
          pos += bytesRead;
        }
        if (finished) break;
        const due = Date.now() - lastFlush >= flushIntervalMs;
        if (signal?.aborted || (due && writer.offset > writer.committedOffset)) {
          // Not `onFlush?.(await writer.flush())`: optional chaining would skip the flush too.
          const committed = await writer.flush();
          onFlush?.(committed);
          lastFlush = Date.now();
        }
        if (signal?.aborted) {
          return { key, relativePath, outcome: 'stopped', committedOffset: writer.committedOffset };
        }
        await sleep(pollIntervalMs, signal);
      }
      const digest = await digestFile(abs);
      if (digest.size !== pos) {
        throw new IntegrityError(
          `${abs} changed after its attempt finished (${digest.size} bytes, read ${pos})`,
        );
      }
      await writer.finish(digest);
    } catch (err) {
      await writer.abort().catch(() => {});
      throw err;
    } finally {
      await fh.close();
    }
    // The store now holds the complete log: verification, catalog and local copy as for any ship.
    return this.shipFile(abs);
  }

  /**
   * Stores the file as the attempt's complete log, resuming an interrupted earlier run: through
   * the store's one-pass `upload()` when it has one (its resume state kept in our journal), else
   * through a writer from the store's committed offset. Returns the bytes sent in this run.
   */
  private async transfer(
    file: string,
    key: AttemptKey,
    digest: Digest,
    options: ShipOptions,
    journal: UploadJournal,
  ): Promise<number> {
    const { store } = this.options;
    const { signal, onProgress } = options;
    const remote = await store.stat(key, { signal });
    if (remote?.complete) {
      if (remote.size === digest.size) return 0; // finished before a crash; verify() decides
      throw new ConflictError(
        `${formatAttempt(key)} is already complete in ${store.url} with ${remote.size} bytes, ` +
          `but the local log has ${digest.size}; delete the archived copy first to replace it`,
      );
    }
    if (store.upload) {
      let resumedAt: number | undefined;
      let done = 0;
      await store.upload(
        key,
        { path: file, ...digest },
        {
          signal,
          journal,
          onProgress: (d, total) => {
            resumedAt ??= d;
            done = d;
            onProgress?.(d, total);
          },
        },
      );
      return done - (resumedAt ?? 0);
    }
    const writer = await store.openWriter(key, { signal });
    try {
      const start = writer.committedOffset;
      if (start > digest.size) {
        throw new ConflictError(
          `${store.url} holds ${start} bytes of ${formatAttempt(key)} but the local log has only ` +
            `${digest.size}; delete the archived chunks to ship it again`,
        );
      }
      onProgress?.(start, digest.size);
      let sent = start;
      if (start < digest.size) {
        for await (const chunk of createReadStream(file, {
          start,
          highWaterMark: 1 << 20,
          signal,
        })) {
          await writer.append(chunk as Buffer);
          sent += (chunk as Buffer).length;
          onProgress?.(sent, digest.size);
        }
      }
      if (sent !== digest.size) {
        throw new IntegrityError(
          `${file} changed while it was shipped (${sent} of ${digest.size} bytes)`,
        );
      }
      await writer.finish(digest);
      return sent - start;
    } catch (err) {
      await writer.abort().catch(() => {});
      throw err;
    }
  }

  /** The archive copy must have the local size and sha256 before anything trusts it. */
  private async verify(key: AttemptKey, expected: Digest, signal?: AbortSignal) {
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

  private journalPath(relativePath: string): string {
    const id = createHash('sha256').update(relativePath).digest('hex').slice(0, 32);
    return join(this.options.stateFolder, 'journal', `${id}.json`);
  }

  private async readJournal(path: string): Promise<Journal | undefined> {
    try {
      const j = JSON.parse(await readFile(path, 'utf8')) as Journal;
      return j.version === 1 ? j : undefined;
    } catch {
      return undefined; // missing or torn: the store and catalog are the truth, start over
    }
  }

  /** Atomic: a crash leaves the old journal or the new one, never half of one. */
  private async writeJournal(path: string, journal: Journal) {
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(journal), { flush: true });
    await rename(tmp, path);
  }
}
