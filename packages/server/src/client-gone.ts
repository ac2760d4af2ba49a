import type { ServerResponse } from 'node:http';

/**
 * A signal that aborts when the client goes away before the response finished, so store reads
 * and agent connections made for that response stop with it.
 */
export function clientGoneSignal(res: ServerResponse): AbortSignal {
  const aborted = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) aborted.abort();
  });
  return aborted.signal;
}
