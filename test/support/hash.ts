import { createHash } from 'node:crypto';

/** The sha256 of `bytes` in hex, as LogWriter.finish() and the catalog take it. */
export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
