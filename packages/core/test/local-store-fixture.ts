import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type AttemptKey, attemptKey, LocalStore } from '@tasklog/core';
import { afterEach, beforeEach } from 'vitest';
import { sha256 } from '../../../test/support/hash.js';

/**
 * What the LocalStore tests share: a new folder per test (`dir`) holding the store's `root` and a
 * folder `outside` it, and `store` on that root, set by the hooks `useStorePerTest()` registers.
 */
export const k = attemptKey({
  dagId: 'etl',
  runId: 'scheduled__2024-01-01T00:00:00+00:00',
  taskId: 'load',
  tryNumber: 1,
});
export const REL =
  'dag_id=etl/run_id=scheduled__2024-01-01T00:00:00+00:00/task_id=load/attempt=1.log';

export let dir: string;
export let root: string;
export let outside: string;
export let store: LocalStore;

export function useStorePerTest(): void {
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tasklog-local-'));
    root = path.join(dir, 'archive');
    outside = path.join(dir, 'outside');
    await mkdir(root);
    await mkdir(outside);
    store = new LocalStore({ root });
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
}

export async function readAll(s: LocalStore, key: AttemptKey, offset = 0): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of s.read(key, { offset })) pieces.push(Buffer.from(piece.bytes));
  return Buffer.concat(pieces);
}

export async function listAll(
  s: LocalStore,
  filter: Partial<AttemptKey> = {},
): Promise<AttemptKey[]> {
  const out: AttemptKey[] = [];
  for await (const key of s.list(filter)) out.push(key);
  return out;
}

export async function writeLog(key: AttemptKey, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  const writer = await store.openWriter(key);
  await writer.append(bytes);
  await writer.finish({ size: bytes.length, sha256: sha256(bytes) });
}

export const chunkDir = () => path.join(root, `${REL}.chunks`);
export const chunk = (offset: number) => `${String(offset).padStart(20, '0')}.chunk`;
