import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { makeTempDir, removeTempDir } from '../../../test/support/temp-dir.js';

/** A temporary folder; `path` is set by the hooks `useTempDir()` registers. */
export interface TempDir {
  readonly path: string;
}

/**
 * Registers hooks that give the enclosing block a new temporary folder `tasklog-<label>-…`, a new
 * one for each test or (`per: 'block'`) one for all of them, removed afterwards.
 */
export function useTempDir(label: string, per: 'test' | 'block' = 'test'): TempDir {
  const dir = { path: '' };
  const [before, after] = per === 'test' ? [beforeEach, afterEach] : [beforeAll, afterAll];
  before(async () => {
    dir.path = await makeTempDir(label);
  });
  after(async () => {
    await removeTempDir(dir.path);
  });
  return dir;
}
