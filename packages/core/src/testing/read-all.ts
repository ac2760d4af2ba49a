import { expect } from 'vitest';
import type { AttemptKey } from '../attempt-key.js';
import type { LogStore, ReadOptions } from '../store.js';

/**
 * Reads a log into one Buffer (test logs are small enough), checking on the way that the pieces
 * arrive in order, back to back, starting at the requested offset.
 */
export async function readAll(
  store: LogStore,
  key: AttemptKey,
  options: ReadOptions = {},
): Promise<Buffer> {
  const pieces: Buffer[] = [];
  let expected = options.offset ?? 0;
  for await (const piece of store.read(key, options)) {
    expect(piece.offset).toBe(expected);
    expected += piece.bytes.length;
    pieces.push(Buffer.from(piece.bytes));
  }
  return Buffer.concat(pieces);
}
