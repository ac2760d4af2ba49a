import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, opendir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { AttemptKey } from './attempt-key.js';
import { formatAttempt } from './attempt-key.js';
import type { Catalog } from './catalog/catalog.js';
import { ConflictError, IntegrityError, InvalidInputError, NotFoundError } from './errors.js';
import { type Digest, digestFile, digestStored } from './hashing.js';
import type { PathTemplate } from './path-template.js';
import type { LogStore } from './store.js';

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

export interface ShipOptions {
  signal?: AbortSignal;
  /** Called as bytes are handed to the store: (bytes of this file sent so far, file size). */
  onProgress?: (done: number, total: number) => void;
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
      uploaded = await this.upload(abs, key, digest, options);
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

  /** Uploads from where the store's committed offset says an earlier attempt stopped. */
  private async upload(file: string, key: AttemptKey, digest: Digest, options: ShipOptions) {
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
