import type { FileMetadata } from '@google-cloud/storage';
import { ConflictError } from '../../errors.js';
import type { LogStat } from '../../store.js';
import { throwIfAborted } from '../shared/store-checks.js';
import type { Backend } from './client.js';
import { statusOf } from './errors.js';

// The object of a finished log: its content type, the custom metadata tasklog keeps on it, and
// the conditional patch that marks it verified.

export const LOG_CONTENT_TYPE = 'text/plain; charset=utf-8';
/** Custom metadata of a finished log: its uncompressed size and verified sha256. */
export const META_SIZE = 'tasklog-size';
const META_SHA256 = 'tasklog-sha256';

/** The sha256 a finished log was verified against, if it was. */
export function verifiedSha256(meta: FileMetadata) {
  return meta.metadata?.[META_SHA256];
}

export function finalStat(meta: FileMetadata): LogStat {
  const sha256 = verifiedSha256(meta);
  return {
    size: declaredSize(meta),
    complete: true,
    ...(typeof sha256 === 'string' ? { sha256 } : {}),
    ...(meta.updated ? { modifiedAt: new Date(meta.updated) } : {}),
  };
}

/** The log's uncompressed size: tasklog's metadata, else (an object Airflow wrote) its size. */
export function declaredSize(meta: FileMetadata): number {
  return Number(meta.metadata?.[META_SIZE] ?? meta.size);
}

export function generationOf(meta: FileMetadata): number | undefined {
  return meta.generation === undefined ? undefined : Number(meta.generation);
}

/**
 * Sets `tasklog-size` and `tasklog-sha256` on a finished log that was just checked against them.
 * The patch is conditional on the generation and metageneration that were checked, so it never
 * lands on an object replaced or changed since (ConflictError then).
 */
export async function stampVerified(
  be: Backend,
  object: string,
  checked: FileMetadata,
  expected: { size: number; sha256: string },
  signal?: AbortSignal,
): Promise<void> {
  throwIfAborted(signal);
  try {
    await be.bucket.file(object).setMetadata(
      { metadata: { [META_SIZE]: String(expected.size), [META_SHA256]: expected.sha256 } },
      {
        ifGenerationMatch: checked.generation,
        ifMetagenerationMatch: checked.metageneration,
      },
    );
  } catch (err) {
    if (statusOf(err) === 412) {
      // Our own patch may have landed on a try whose answer was lost (it bumps the
      // metageneration): the same generation now carrying this sha256 is that patch.
      const now = await be.metadata(object, signal);
      if (
        now &&
        String(now.generation) === String(checked.generation) &&
        verifiedSha256(now) === expected.sha256
      ) {
        return;
      }
      throw new ConflictError(`${be.describe(object)} changed while it was being verified`, {
        cause: err,
      });
    }
    throw be.error(err, 'set metadata of', object, signal);
  }
}
