import type { OutputLogEvent } from '@aws-sdk/client-cloudwatch-logs';
import { throwIfAborted } from '../shared/store-checks.js';
import type { CloudWatchContext } from './client.js';
import { isNotFound } from './errors.js';
import { classifyStream, type StreamLayout } from './events.js';

/** The stream a read goes through. */
export interface StreamRef {
  ctx: CloudWatchContext;
  group: string;
  stream: string;
  signal?: AbortSignal | undefined;
}

/**
 * Every event of a stream from its head, paging GetLogEvents until the same forward token comes
 * back. Not the SDK's paginator: GetLogEvents never stops returning a forward token, and the
 * paginator loops forever on it unless told to stop on a repeated token.
 */
export function eventsFromHead(ref: StreamRef): AsyncGenerator<OutputLogEvent> {
  return streamEvents(ref, 'head');
}

/**
 * Every event of a stream from its newest back to its head, a page at a time (newest first
 * within each page too), until the backward token repeats. The first page holds at most
 * `firstPage` events: most callers stop within the last few.
 */
export function eventsFromTail(ref: StreamRef, firstPage = 25): AsyncGenerator<OutputLogEvent> {
  return streamEvents(ref, 'tail', firstPage);
}

/** GetLogEvents pages from the stream's head or tail, until the token of that direction repeats. */
async function* streamEvents(
  ref: StreamRef,
  from: 'head' | 'tail',
  firstPage?: number,
): AsyncGenerator<OutputLogEvent> {
  let token: string | undefined;
  for (;;) {
    throwIfAborted(ref.signal);
    const page = await eventsPage(ref, from, token ? { nextToken: token } : { limit: firstPage });
    const events = page.events ?? [];
    yield* from === 'head' ? events : [...events].reverse();
    const next = from === 'head' ? page.nextForwardToken : page.nextBackwardToken;
    if (!next || next === token) return;
    token = next;
  }
}

/** One GetLogEvents page from the stream's head or tail. */
function eventsPage(
  ref: StreamRef,
  from: 'head' | 'tail',
  page: { nextToken?: string; limit?: number | undefined },
) {
  const { ctx, group, stream, signal } = ref;
  return ctx.client.send(
    new ctx.sdk.GetLogEventsCommand({
      logGroupName: group,
      logStreamName: stream,
      startFromHead: from === 'head',
      ...page,
    }),
    { abortSignal: signal },
  );
}

/** What `call` resolves to, or undefined when the stream (or its log group) does not exist. */
export async function unlessMissing<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * The stream's first event (`first` undefined for an empty stream); undefined when the stream
 * does not exist.
 */
export async function streamHead(
  ref: StreamRef,
): Promise<{ first: OutputLogEvent | undefined } | undefined> {
  const page = await unlessMissing(eventsPage(ref, 'head', { limit: 1 }));
  return page && { first: page.events?.[0] };
}

/** How the stream reads (from its first event): undefined when it does not exist. */
export async function streamLayout(ref: StreamRef): Promise<StreamLayout | undefined> {
  const head = await streamHead(ref);
  return head && classifyStream(head.first?.message);
}

/** The stream's last `limit` events, oldest first; undefined when the stream does not exist. */
export async function lastEvents(
  ref: StreamRef,
  limit: number,
): Promise<OutputLogEvent[] | undefined> {
  const page = await unlessMissing(eventsPage(ref, 'tail', { limit }));
  return page && (page.events ?? []);
}

/** Events whose JSON matches `{ $.offset >= from }` (envelope streams), page by page. */
export async function* envelopesFrom(ref: StreamRef, from: number): AsyncGenerator<OutputLogEvent> {
  const { ctx, group, stream, signal } = ref;
  let token: string | undefined;
  do {
    throwIfAborted(signal);
    const page = await ctx.client.send(
      new ctx.sdk.FilterLogEventsCommand({
        logGroupName: group,
        logStreamNames: [stream],
        filterPattern: `{ $.offset >= ${from} }`,
        ...(token ? { nextToken: token } : {}),
      }),
      { abortSignal: signal },
    );
    yield* page.events ?? [];
    token = page.nextToken;
  } while (token);
}

/** One page of DescribeLogStreams (50, its maximum) below `prefix`. */
export function describeStreams(
  ctx: CloudWatchContext,
  group: string,
  prefix: string,
  token: string | undefined,
  signal: AbortSignal | undefined,
) {
  return ctx.client.send(
    new ctx.sdk.DescribeLogStreamsCommand({
      logGroupName: group,
      limit: 50,
      ...(prefix ? { logStreamNamePrefix: prefix } : {}),
      ...(token ? { nextToken: token } : {}),
    }),
    { abortSignal: signal },
  );
}
