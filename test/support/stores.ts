import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type {
  AttemptKey,
  LocalLogFile,
  LogStore,
  LogWriter,
  OpenWriterOptions,
  UploadJournal,
} from '@tasklog/core';
import { sha256 } from './hash.js';

/** Stores `content` as a finished log: one append, then finish with its size and sha256. */
export async function writeLog(store: LogStore, key: AttemptKey, content: Buffer): Promise<void> {
  const writer = await store.openWriter(key);
  await writer.append(content);
  await writer.finish({ size: content.length, sha256: sha256(content) });
}

/**
 * A running attempt: a writer that appended each of `pieces` and flushed after each (a chunk per
 * piece in a blob store), returned still open, to be finished, aborted or left for dead.
 */
export async function writeRunning(
  store: LogStore,
  key: AttemptKey,
  pieces: Iterable<Buffer>,
  options?: OpenWriterOptions,
): Promise<LogWriter> {
  const writer = await store.openWriter(key, options);
  for (const piece of pieces) {
    await writer.append(piece);
    await writer.flush();
  }
  return writer;
}

/** `content` cut into pieces of `bytes` bytes, the last one shorter. */
export function splitEvery(content: Buffer, bytes: number): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0; at < content.length; at += bytes) pieces.push(content.subarray(at, at + bytes));
  return pieces;
}

/** An upload journal in memory; `state` is what the store saved last, as JSON would keep it. */
export function memoryJournal(): UploadJournal & { state: unknown } {
  const journal = {
    state: undefined as unknown,
    load: async () => journal.state,
    save: async (state: unknown) => {
      journal.state = JSON.parse(JSON.stringify(state));
    },
  };
  return journal;
}

/** Writes `content` to `dir/name` and describes it as upload() takes a finished log. */
export async function logFile(dir: string, name: string, content: Buffer): Promise<LocalLogFile> {
  const path = join(dir, name);
  await writeFile(path, content);
  return { path, size: content.length, sha256: sha256(content) };
}
