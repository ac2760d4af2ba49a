import { readFile, rename, writeFile } from 'node:fs/promises';
import type { UploadJournal } from '../../packages/core/src/store.js';

/**
 * An UploadJournal kept in a JSON file, replaced atomically on every save, as the shipper keeps
 * its own: a process killed at any moment leaves the previous state or the new one.
 */
export function fileJournal(path: string): UploadJournal {
  return {
    async load() {
      try {
        return JSON.parse(await readFile(path, 'utf8')) as unknown;
      } catch {
        return undefined;
      }
    },
    async save(state) {
      const temp = `${path}.${process.pid}.tmp`;
      await writeFile(temp, JSON.stringify(state ?? null), { flush: true });
      await rename(temp, path);
    },
  };
}
