import type { UploadJournal } from '../../store.js';
import type { Backend } from './client.js';

// A resumable upload session (https://cloud.google.com/storage/docs/performing-resumable-uploads)
// and the state a caller's journal keeps to resume it. The session URI itself authorizes requests
// to it, so plain fetch suffices and honours the signal.

/**
 * What a resumable upload (`upload()`, a gzip writer's `finish()`) keeps in the caller's journal
 * to resume its session. Journals outlive a crash and an upgrade: keep this shape readable.
 */
export interface UploadState {
  version: 1;
  object: string;
  uri: string;
  size: number;
  sha256: string;
  compression: 'none' | 'gzip';
}

export function parseUploadState(value: unknown): UploadState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Partial<UploadState>;
  return v.version === 1 &&
    typeof v.object === 'string' &&
    typeof v.uri === 'string' &&
    typeof v.size === 'number' &&
    typeof v.sha256 === 'string' &&
    (v.compression === 'none' || v.compression === 'gzip')
    ? (v as UploadState)
    : undefined;
}

export type SessionStatus =
  | { kind: 'active'; persisted: number }
  | { kind: 'complete' }
  | { kind: 'gone' };

/**
 * Asks a resumable session how far it got.
 * https://cloud.google.com/storage/docs/performing-resumable-uploads#status-check
 */
export async function sessionStatus(
  be: Backend,
  uri: string,
  object: string,
  signal?: AbortSignal,
): Promise<SessionStatus> {
  let res: Response;
  try {
    res = await fetch(uri, {
      method: 'PUT',
      headers: { 'Content-Range': 'bytes */*', 'Content-Length': '0' },
      signal,
    });
  } catch (err) {
    throw be.error(err, 'check the upload session of', object, signal);
  }
  await res.body?.cancel();
  if (res.status === 308) {
    const range = /^bytes=0-(\d+)$/.exec(res.headers.get('range') ?? '');
    return { kind: 'active', persisted: range ? Number(range[1]) + 1 : 0 };
  }
  if (res.status === 200 || res.status === 201) return { kind: 'complete' };
  if (res.status === 404 || res.status === 410) return { kind: 'gone' };
  throw be.error(
    Object.assign(new Error(`upload session answered HTTP ${res.status}`), { code: res.status }),
    'check the upload session of',
    object,
    signal,
  );
}

/**
 * Cancels a resumable upload session (best effort: one that finished or expired is fine).
 * https://cloud.google.com/storage/docs/performing-resumable-uploads#cancel-upload
 */
export async function cancelSession(uri: string, signal?: AbortSignal): Promise<void> {
  try {
    const res = await fetch(uri, {
      method: 'DELETE',
      headers: { 'Content-Length': '0' },
      signal,
    });
    await res.body?.cancel();
  } catch {
    // Unreachable now: the session expires by itself within a week and holds no object.
  }
}

/** Cancels the session `journal` names for `object`, if any, and clears the journal. */
export async function cancelJournaledSession(
  object: string,
  journal: UploadJournal | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const saved = parseUploadState(await journal?.load());
  if (saved && saved.object === object) {
    await cancelSession(saved.uri, signal);
    await journal?.save(null);
  }
}
