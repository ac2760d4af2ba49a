import type { FileHandle } from 'node:fs/promises';
import type { AttemptKey } from './attempt-key.js';
import { formatAttempt } from './attempt-key.js';
import { ConflictError, IntegrityError } from './errors.js';
import type { Digest } from './hashing.js';
import type { ShipJournal, ShipProgress } from './ship-journal.js';
import type { ShipOptions } from './shipper.js';
import type { LogStat, LogStore } from './store.js';

/** The local log: its path (for messages) and the handle it was opened with, read through. */
export interface OpenLog {
  path: string;
  handle: FileHandle;
}

/**
 * Stores the file as the attempt's complete log, resuming an interrupted earlier run: through
 * the store's one-pass `upload()` when it has one (its resume state kept in our journal), else
 * through a writer from the store's committed offset. Returns the bytes sent in this run.
 */
export async function transferLog(
  store: LogStore,
  file: OpenLog,
  key: AttemptKey,
  ship: ShipProgress,
  journal: ShipJournal,
  options: ShipOptions,
): Promise<number> {
  const { signal } = options;
  const remote = await store.stat(key, { signal });
  if (remote?.complete) {
    if (remote.size === ship.size) return 0; // finished before a crash; verify() decides
    if (!ship.replace) {
      throw new ConflictError(
        `${formatAttempt(key)} is already complete in ${store.url} with ${remote.size} bytes, ` +
          `but the local log has ${ship.size}; delete the archived copy first to replace it`,
      );
    }
  }
  const digest: Digest = { size: ship.size, sha256: ship.sha256 };
  try {
    return await storeLog(store, file, key, ship, digest, remote, journal, options);
  } catch (err) {
    // A request of a killed earlier run can land after this run looked: if the log is now
    // complete with our size, verify() decides whether it is ours.
    if (!(err instanceof ConflictError) || ship.replace) throw err;
    const now = await store.stat(key, { signal });
    if (now?.complete && now.size === ship.size) return 0;
    throw err;
  }
}

/** The upload itself: `upload()` where the store has it, else a writer from `committedOffset`. */
async function storeLog(
  store: LogStore,
  file: OpenLog,
  key: AttemptKey,
  ship: ShipProgress,
  digest: Digest,
  remote: LogStat | undefined,
  journal: ShipJournal,
  options: ShipOptions,
): Promise<number> {
  const { signal, onProgress } = options;
  if (store.upload) {
    let resumedAt: number | undefined;
    let done = 0;
    await store.upload(
      key,
      { path: file.path, handle: file.handle, ...digest },
      {
        signal,
        journal: journal.uploadSlot(),
        replace: ship.replace === true,
        onProgress: (d, total) => {
          resumedAt ??= d;
          done = d;
          onProgress?.(d, total);
        },
      },
    );
    return done - (resumedAt ?? 0);
  }
  // Record stores keep no single object to replace atomically: the grown log is written again.
  if (remote?.complete && ship.replace) await store.delete(key, { signal });
  const writer = await store.openWriter(key, { signal, journal: journal.writerSlot() });
  try {
    const start = writer.committedOffset;
    if (start > digest.size) {
      throw new ConflictError(
        `${store.url} holds ${start} bytes of ${formatAttempt(key)} but the local log has only ` +
          `${digest.size}; delete the archived chunks to ship it again`,
      );
    }
    onProgress?.(start, digest.size);
    let sent = start;
    if (start < digest.size) {
      for await (const chunk of file.handle.createReadStream({
        autoClose: false,
        start,
        end: digest.size - 1,
        highWaterMark: 1 << 20,
        signal,
      })) {
        await writer.append(chunk as Buffer);
        sent += (chunk as Buffer).length;
        onProgress?.(sent, digest.size);
      }
    }
    if (sent !== digest.size) {
      throw new IntegrityError(
        `${file.path} changed while it was shipped (${sent} of ${digest.size} bytes)`,
      );
    }
    await writer.finish(digest);
    return sent - start;
  } catch (err) {
    await writer.abort().catch(() => {});
    throw err;
  }
}
