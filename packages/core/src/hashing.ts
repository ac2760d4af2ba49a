import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { AttemptKey } from './attempt-key.js';
import { IntegrityError } from './errors.js';
import type { LogStore } from './store.js';

export interface Digest {
  size: number;
  sha256: string;
}

/** Size and sha256 of a local file, streamed. */
export async function digestFile(path: string | FileHandle, signal?: AbortSignal): Promise<Digest> {
  return digestFileWithPrefix(path, undefined, signal);
}

/**
 * Size and sha256 of a local file and, in the same pass, the sha256 of its first `prefix` bytes
 * (`prefixSha256`, undefined when the file is shorter): tells whether a log only grew since an
 * earlier digest of `prefix` bytes.
 */
export async function digestFileWithPrefix(
  path: string | FileHandle,
  prefix: number | undefined,
  signal?: AbortSignal,
): Promise<Digest & { prefixSha256?: string }> {
  const hash = createHash('sha256');
  let size = 0;
  let prefixSha256 = prefix === 0 ? hash.copy().digest('hex') : undefined;
  // Through an open handle (one that was checked when it was opened), from byte 0, leaving it open.
  const stream =
    typeof path === 'string'
      ? createReadStream(path, { highWaterMark: 1 << 20, signal })
      : path.createReadStream({ start: 0, highWaterMark: 1 << 20, autoClose: false, signal });
  for await (const data of stream) {
    const chunk = data as Buffer;
    if (prefix !== undefined && size < prefix && size + chunk.length >= prefix) {
      hash.update(chunk.subarray(0, prefix - size));
      prefixSha256 = hash.copy().digest('hex');
      hash.update(chunk.subarray(prefix - size));
    } else {
      hash.update(chunk);
    }
    size += chunk.length;
  }
  return { size, sha256: hash.digest('hex'), ...(prefixSha256 ? { prefixSha256 } : {}) };
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
