import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { AttemptKey } from './attempt-key.js';
import { IntegrityError } from './errors.js';
import type { LogStore } from './store.js';

export interface Digest {
  size: number;
  sha256: string;
}

/** Size and sha256 of a local file, streamed. */
export async function digestFile(path: string, signal?: AbortSignal): Promise<Digest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20, signal })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

/** Size and sha256 of what a store holds for an attempt, read back in full (streamed). */
export async function digestStored(
  store: LogStore,
  key: AttemptKey,
  signal?: AbortSignal,
): Promise<Digest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of store.read(key, { signal })) {
    if (chunk.offset !== size) {
      throw new IntegrityError(`store returned offset ${chunk.offset} where ${size} was expected`);
    }
    hash.update(chunk.bytes);
    size += chunk.bytes.length;
  }
  return { size, sha256: hash.digest('hex') };
}
