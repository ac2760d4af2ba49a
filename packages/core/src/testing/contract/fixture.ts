import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import type { LocalLogFile, LogStore, LogWriter, StoreCapabilities } from '../../store.js';
import { splitAt } from '../logs.js';
import { readAll } from '../read-all.js';

/** A store for one test, and how to remove what it stored once the test is over. */
export interface StoreFixture {
  /** A fresh store, holding none of the attempts the suite writes (see describeStoreContract). */
  store: LogStore;
  /** Called after `store.close()`, e.g. to remove a temporary folder; none needed by default. */
  cleanup?: () => Promise<void>;
}

/** The optional parts of the contract, for stores that have what they test. */
export interface ContractOptions {
  /**
   * A fresh, empty store whose writers flush by themselves once `bytes` bytes are buffered (the
   * blob stores' `flushBytes` / `chunkSize`; the suite asks for 8 to 40 bytes). Without it the
   * automatic-flush tests skip.
   */
  withFlushBytes?: (bytes: number) => Promise<StoreFixture>;
}

/**
 * What the parts of the contract (the `describe…` functions beside this file) share while the
 * suite of one store runs. Each of their describe blocks copies `store` into a variable of its
 * own before every test, so the tests read as if the store were theirs.
 */
export interface ContractSuite {
  /** The running test's store: a fresh one from the suite's setup, released after the test. */
  readonly store: LogStore;
  /** What the store declared when the suite was collected. */
  readonly capabilities: StoreCapabilities;
  /** Whether the store has the optional `sweep` method. */
  readonly canSweep: boolean;
  /** Whether the store has the optional `upload` method. */
  readonly canUpload: boolean;
  readonly options: ContractOptions;
}

export const RUN_ID = 'scheduled__2024-01-01T00:00:00+00:00';

export function key(overrides: Partial<AttemptKey> = {}): AttemptKey {
  return attemptKey({
    dagId: 'contract_dag',
    runId: RUN_ID,
    taskId: 'extract',
    mapIndex: -1,
    tryNumber: 1,
    ...overrides,
  });
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Appends `content` split at `cuts` (as splitAt takes them), flushing after every piece. */
export async function appendInPieces(
  writer: LogWriter,
  content: Buffer,
  cuts: number[],
): Promise<void> {
  for (const piece of splitAt(content, cuts)) {
    if (piece.length === 0) continue;
    await writer.append(piece);
    await writer.flush();
  }
}

export async function writeLog(
  store: LogStore,
  k: AttemptKey,
  content: Buffer,
  cuts: number[] = [],
): Promise<void> {
  const writer = await store.openWriter(k);
  await appendInPieces(writer, content, cuts);
  await writer.finish({ size: content.length, sha256: sha256(content) });
}

/** Finishes `writer` as `content` and expects the store to return exactly `content` for key(). */
export async function finishAndExpectStored(
  store: LogStore,
  writer: LogWriter,
  content: Buffer,
): Promise<void> {
  await writer.finish({ size: content.length, sha256: sha256(content) });
  expect((await readAll(store, key())).equals(content)).toBe(true);
}

export async function listAll(store: LogStore, filter: Partial<AttemptKey>): Promise<string[]> {
  const out: string[] = [];
  for await (const k of store.list(filter)) out.push(id(k));
  return out.sort();
}

/** A finished log in a local file, as upload() takes it (the caller removes `dir`). */
export async function localLog(dir: string, name: string, content: Buffer): Promise<LocalLogFile> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  return { path: file, size: content.length, sha256: sha256(content) };
}

export function id(k: AttemptKey): string {
  return `${k.dagId}|${k.runId}|${k.taskId}|${k.mapIndex}|${k.tryNumber}`;
}

/** Closes a fixture's store and cleans up after it. */
export async function release(fixture: StoreFixture): Promise<void> {
  await fixture.store.close();
  await fixture.cleanup?.();
}

/** Runs `test` on the fixture's store, then releases the fixture whatever the outcome. */
export async function withFixture(fixture: StoreFixture, test: (store: LogStore) => Promise<void>) {
  try {
    await test(fixture.store);
  } finally {
    await release(fixture);
  }
}

/** True when `bytes` is valid UTF-8 that does not end inside a character. */
export function wholeCharacters(bytes: Buffer): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}
