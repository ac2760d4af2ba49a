import type { SweepOptions } from '../../store.js';
import type { S3Context } from './client.js';
import { deleteKeys, type Location, listChunks } from './layout.js';
import { abortJournaled, abortUpload, listUploads } from './multipart-journal.js';

// What `sweep()` removes beside a complete log, and how it reports the steps a server without
// the multipart housekeeping calls (s3rver 3.7) cannot take.

/** A cleanup step `sweep()` could not take because the server lacks the S3 call it needs. */
export interface SweepSkip {
  operation: 'AbortMultipartUpload' | 'ListMultipartUploads';
  /** `s3://bucket/key` the step was about. */
  target: string;
  uploadId?: string;
  /** For the caller's log. */
  message: string;
}

export interface S3SweepOptions extends SweepOptions {
  /**
   * Told about every step skipped because the server answered "not implemented" (s3rver 3.7 has
   * neither AbortMultipartUpload nor ListMultipartUploads); the rest of the sweep goes on.
   */
  onSkipped?: (skip: SweepSkip) => void;
}

/**
 * Removes the chunk objects of a complete log (the empty offset-0 marker included), aborts the
 * multipart upload `options.journal` names, then every other upload in progress for exactly this
 * key (ListMultipartUploads, for an upload whose id never reached a journal).
 */
export async function sweepLeftovers(
  ctx: S3Context,
  loc: Location,
  options: S3SweepOptions,
): Promise<void> {
  const { signal, journal, onSkipped } = options;
  const chunks = await listChunks(ctx, loc, signal);
  await deleteKeys(
    ctx,
    chunks.map((c) => c.key),
    signal,
  );
  const target = `s3://${ctx.bucket}/${loc.final}`;
  const skipped = (uploadId: string) =>
    onSkipped?.({
      operation: 'AbortMultipartUpload',
      target,
      uploadId,
      message: `the S3 server cannot abort multipart upload ${uploadId} of ${target} (AbortMultipartUpload not implemented); a bucket lifecycle rule (AbortIncompleteMultipartUpload) must remove it`,
    });
  const journaled = await abortJournaled(ctx, loc.final, journal, signal);
  if (journaled?.outcome === 'unsupported') skipped(journaled.uploadId);
  const open = await listUploads(ctx, loc.final, signal);
  if (open === 'unsupported') {
    onSkipped?.({
      operation: 'ListMultipartUploads',
      target,
      message: `the S3 server cannot list multipart uploads (ListMultipartUploads not implemented), so uploads of ${target} that no journal names are not found`,
    });
    return;
  }
  for (const uploadId of open) {
    const outcome = await abortUpload(ctx, loc.final, uploadId, signal, 'throw');
    if (outcome === 'unsupported') skipped(uploadId);
  }
}
