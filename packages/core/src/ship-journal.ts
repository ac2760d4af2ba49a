import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BackendUnavailableError } from './errors.js';
import type { UploadJournal } from './store.js';

/**
 * The phases a ship of a finished log goes through, in order. The journal records the last one
 * reached so an interrupted ship resumes after it; the store's own state says where the upload
 * resumes.
 */
export type ShipPhase = 'uploading' | 'verified' | 'recorded';

/** A ship of the finished log in progress. */
export interface ShipProgress {
  size: number;
  sha256: string;
  mtimeMs: number;
  phase: ShipPhase;
  /** The archive holds an older, shorter complete copy that this ship replaces (the log grew). */
  replace?: boolean;
  /** The store's `upload()` resume state (e.g. an S3 multipart upload id and parts). */
  upload?: unknown;
}

interface JournalData {
  version: 2;
  relativePath: string;
  storeUrl: string;
  ship?: ShipProgress;
  /** The store writer's resume state of its `finish()` (e.g. the S3 multipart assembly). */
  writer?: unknown;
}

/**
 * The small per-attempt file in `<state folder>/journal/` that lets an interrupted ship or follow
 * resume instead of starting over, and tells a later sweep what a killed writer left open.
 * Only the holder of the attempt's lock (attempt-lock.ts) reads or writes it. Every save is
 * atomic (temp file, flush, rename), so a crash leaves the old journal or the new one.
 */
export class ShipJournal {
  readonly path: string;
  #data: JournalData;

  private constructor(path: string, data: JournalData) {
    this.path = path;
    this.#data = data;
  }

  /** Loads the attempt's journal; one for another store (or a torn one) counts as none. */
  static async open(
    stateFolder: string,
    relativePath: string,
    storeUrl: string,
  ): Promise<ShipJournal> {
    const path = ShipJournal.pathOf(stateFolder, relativePath);
    const fresh: JournalData = { version: 2, relativePath, storeUrl };
    let data = fresh;
    try {
      const raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
      if (raw.relativePath === relativePath && raw.storeUrl === storeUrl) {
        if (raw.version === 2) data = raw as unknown as JournalData;
        // Version 1 (one ship, fields at the top level), from tasklog before the agent's sweep.
        else if (raw.version === 1) data = { ...fresh, ship: raw as unknown as ShipProgress };
      }
    } catch {
      // Missing or torn: the store and catalog are the truth, start over.
    }
    return new ShipJournal(path, data);
  }

  /** Where the journal of the attempt at `relativePath` lives. */
  static pathOf(stateFolder: string, relativePath: string): string {
    const id = createHash('sha256').update(relativePath).digest('hex').slice(0, 32);
    return join(stateFolder, 'journal', `${id}.json`);
  }

  get ship(): ShipProgress | undefined {
    return this.#data.ship;
  }

  /** Whether any store state (an upload or a writer's finish) may still be open. */
  get storeStates(): UploadJournal[] {
    const slots: UploadJournal[] = [];
    if (this.#data.ship?.upload !== undefined) slots.push(this.uploadSlot());
    if (this.#data.writer !== undefined) slots.push(this.writerSlot());
    return slots;
  }

  async setShip(ship: ShipProgress | undefined): Promise<void> {
    await this.#save({ ...this.#data, ship });
  }

  /** Where the store's `upload()` keeps its resume state. */
  uploadSlot(): UploadJournal {
    return {
      load: async () => this.#data.ship?.upload,
      save: async (upload) => {
        if (!this.#data.ship) throw new Error('upload state saved outside a ship');
        await this.#save({ ...this.#data, ship: { ...this.#data.ship, upload } });
      },
    };
  }

  /** Where a store writer keeps the resume state of its `finish()`. */
  writerSlot(): UploadJournal {
    return {
      load: async () => this.#data.writer,
      save: async (writer) => this.#save({ ...this.#data, writer }),
    };
  }

  /** Removes the journal: the attempt is shipped and swept. */
  async remove(): Promise<void> {
    for (const path of [this.path, `${this.path}.tmp`]) {
      await unlink(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw journalError(path, err);
      });
    }
    this.#data = {
      version: 2,
      relativePath: this.#data.relativePath,
      storeUrl: this.#data.storeUrl,
    };
  }

  async #save(data: JournalData): Promise<void> {
    try {
      await mkdir(dirname(this.path), { recursive: true });
      // One name: only the lock holder writes, and a killed writer's temp file is overwritten.
      const tmp = `${this.path}.tmp`;
      await writeFile(tmp, JSON.stringify(data), { flush: true });
      await rename(tmp, this.path);
    } catch (err) {
      throw journalError(this.path, err);
    }
    this.#data = data;
  }
}

function journalError(path: string, cause: unknown): BackendUnavailableError {
  return new BackendUnavailableError(
    `cannot write the ship journal ${path}: ${(cause as Error).message}; check core.state_folder`,
    { cause },
  );
}
