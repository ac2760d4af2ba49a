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
export async function* eventsFromHead(ref: StreamRef): AsyncGenerator<OutputLogEvent> {
  const { ctx, group, stream, signal } = ref;
  let token: string | undefined;
  for (;;) {
    throwIfAborted(signal);
    const page = await ctx.client.send(
      new ctx.sdk.GetLogEventsCommand({
        logGroupName: group,
        logStreamName: stream,
        startFromHead: true,
        ...(token ? { nextToken: token } : {}),
      }),
      { abortSignal: signal },
    );
    yield* page.events ?? [];
    if (!page.nextForwardToken || page.nextForwardToken === token) return;
    token = page.nextForwardToken;
  }
}

/**
 * Every event of a stream from its newest back to its head, a page at a time (newest first
 * within each page too), until the backward token repeats. The first page holds at most
 * `firstPage` events: most callers stop within the last few.
 */
export async function* eventsFromTail(
  ref: StreamRef,
  firstPage = 25,
): AsyncGenerator<OutputLogEvent> {
  const { ctx, group, stream, signal } = ref;
  let token: string | undefined;
  for (;;) {
    throwIfAborted(signal);
    const page = await ctx.client.send(
      new ctx.sdk.GetLogEventsCommand({
        logGroupName: group,
        logStreamName: stream,
        startFromHead: false,
        ...(token ? { nextToken: token } : { limit: firstPage }),
      }),
      { abortSignal: signal },
    );
    yield* [...(page.events ?? [])].reverse();
    if (!page.nextBackwardToken || page.nextBackwardToken === token) return;
    token = page.nextBackwardToken;
  }
}

/** The stream's first event; undefined for an empty stream, NotFound-ish errors are thrown. */
export async function firstEvent(ref: StreamRef): Promise<OutputLogEvent | undefined> {
  const { ctx, group, stream, signal } = ref;
  const page = await ctx.client.send(
    new ctx.sdk.GetLogEventsCommand({
      logGroupName: group,
      logStreamName: stream,
      startFromHead: true,
      limit: 1,
    }),
    { abortSignal: signal },
  );
  return page.events?.[0];
}

/** How the stream reads (from its first event): undefined when it does not exist. */
export async function streamLayout(ref: StreamRef): Promise<StreamLayout | undefined> {
  let first: OutputLogEvent | undefined;
  try {
    first = await firstEvent(ref);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  return classifyStream(first?.message);
}

/** The stream's last `limit` events, oldest first; undefined when the stream does not exist. */
export async function lastEvents(
  ref: StreamRef,
  limit: number,
): Promise<OutputLogEvent[] | undefined> {
  const { ctx, group, stream, signal } = ref;
  try {
    const page = await ctx.client.send(
      new ctx.sdk.GetLogEventsCommand({
        logGroupName: group,
        logStreamName: stream,
        startFromHead: false,
        limit,
      }),
      { abortSignal: signal },
    );
    return page.events ?? [];
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
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
