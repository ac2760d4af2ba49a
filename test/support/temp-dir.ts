import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A new, empty folder in the system's temporary folder, named `tasklog-<label>-…`. */
export function makeTempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `tasklog-${label}-`));
}

/** Removes a folder and all in it; nothing when it was never made (a setup that failed early). */
export async function removeTempDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}
