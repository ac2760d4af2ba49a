import type { File } from '@google-cloud/storage';
import { throwIfAborted } from '../shared/store-checks.js';
import { type Backend, CHUNK_CONTENT_TYPE } from './client.js';
import { PreconditionFailed, statusOf } from './errors.js';
import { LOG_CONTENT_TYPE } from './final-object.js';

/** https://cloud.google.com/storage/docs/composing-objects: at most 32 sources per compose. */
const COMPOSE_LIMIT = 32;

/**
 * Composes sources into `dest`, at most 32 per call, through intermediates under `scratch`. The
 * final compose is created with ifGenerationMatch 0: PreconditionFailed when `dest` exists.
 */
export async function composeObjects(
  be: Backend,
  sources: File[],
  dest: string,
  scratch: string,
  signal?: AbortSignal,
): Promise<void> {
  let current = sources;
  for (let level = 0; current.length > COMPOSE_LIMIT; level++) {
    const next: File[] = [];
    for (let i = 0; i < current.length; i += COMPOSE_LIMIT) {
      throwIfAborted(signal);
      const name = `${scratch}compose-${level}-${i / COMPOSE_LIMIT}`;
      const inter = be.bucket.file(name);
      inter.metadata = { contentType: CHUNK_CONTENT_TYPE };
      try {
        // Deterministic name and sources: a retry or a leftover from a crash is overwritten
        // with the same bytes, so no precondition here.
        await be.bucket.combine(current.slice(i, i + COMPOSE_LIMIT), inter);
      } catch (err) {
        throw be.error(err, 'compose', name, signal);
      }
      next.push(be.bucket.file(name));
    }
    current = next;
  }
  throwIfAborted(signal);
  const target = be.bucket.file(dest);
  target.metadata = { contentType: LOG_CONTENT_TYPE };
  try {
    await be.bucket.combine(current, target, { ifGenerationMatch: 0 });
  } catch (err) {
    if (statusOf(err) === 412) throw new PreconditionFailed(dest, err);
    throw be.error(err, 'compose', dest, signal);
  }
}
