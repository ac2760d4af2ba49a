import type { AttemptKey } from '../../attempt-key.js';
import type { AttemptFilter, PathTemplate } from '../../path-template.js';
import { matchesFilter } from '../shared/chunk-layout.js';
import { throwIfAborted } from '../shared/store-checks.js';
import type { CloudWatchContext } from './client.js';
import { classifyStream, StreamDecoder } from './events.js';
import { impliedKey, listedKey, streamNameOf } from './names.js';
import { describeStreams, type StreamRef, streamHead, unlessMissing } from './pages.js';
import { keyOf } from './reads.js';

/**
 * Every attempt with a stream in the group matching `filter` (validated): DescribeLogStreams
 * below `prefix` (the sanitized prefix the filter fixes), then each stream's first event: a
 * header names the attempt, else the stream's name does (Airflow's own streams and empty ones
 * included).
 */
export async function* listAttempts(
  ctx: CloudWatchContext,
  where: { group: string; prefix: string; pathTemplate: PathTemplate },
  filter: AttemptFilter,
  signal: AbortSignal | undefined,
): AsyncGenerator<AttemptKey> {
  const { group, prefix, pathTemplate } = where;
  let token: string | undefined;
  do {
    throwIfAborted(signal);
    const page = await unlessMissing(describeStreams(ctx, group, prefix, token, signal));
    if (!page) return; // no group: nothing was ever written
    for (const s of page.logStreams ?? []) {
      const name = s.logStreamName;
      if (!name) continue;
      const key = await streamKey({ ctx, group, stream: name, signal }, pathTemplate, filter);
      if (key && matchesFilter(key, filter)) yield key;
    }
    token = page.nextToken;
  } while (token);
}

/**
 * The attempt a listed stream holds: its header's (which must name this stream), else the
 * one its name stands for; undefined for one deleted since it was listed.
 */
async function streamKey(
  ref: StreamRef,
  pathTemplate: PathTemplate,
  filter: AttemptFilter,
): Promise<AttemptKey | undefined> {
  const head = await streamHead(ref);
  if (!head) return undefined;
  const { first } = head;
  // An empty stream: a writer opened it and has flushed nothing yet.
  const layout = classifyStream(first?.message);
  const item = new StreamDecoder(layout).decode(first?.message);
  if (item?.kind === 'header') {
    const key = keyOf(item.key);
    return key && streamNameOf(pathTemplate, key) === ref.stream ? key : undefined;
  }
  if (layout === 'envelope') return undefined;
  const implied = impliedKey(pathTemplate, ref.stream);
  return implied && listedKey(implied, filter);
}
