import type { PutLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import type { CloudWatchContext } from './client.js';

type Middleware = Parameters<PutLogEventsCommand['middlewareStack']['addRelativeTo']>[0];
/** The part of a serialized request the body replacement touches. */
interface SerializedArgs {
  request: { body?: unknown; headers?: Record<string, string> };
}

/** What goes in a PutLogEvents body of each event. */
export interface PutEvent {
  readonly timestamp: number;
  readonly message: string;
}

/**
 * PutLogEvents with the body written by tasklog. The SDK's JSON serializer escapes every
 * message a character at a time in JavaScript, its largest cost when shipping a log; here each
 * message goes through `JSON.stringify` (native) and the body becomes one Buffer. The command
 * is made with no events, so the SDK's serializer has next to nothing to do, and its request
 * body is replaced right after it ran: the content length and the signature are computed later,
 * from this body. The request is otherwise the SDK's (endpoint, headers, retries, errors).
 */
export function putLogEventsCommand(
  ctx: CloudWatchContext,
  logGroupName: string,
  logStreamName: string,
  events: readonly PutEvent[],
): PutLogEventsCommand {
  const command = new ctx.sdk.PutLogEventsCommand({ logGroupName, logStreamName, logEvents: [] });
  const body = putLogEventsBody(logGroupName, logStreamName, events);
  const replaceBody =
    (next: (args: SerializedArgs) => Promise<unknown>) => (args: SerializedArgs) => {
      const request = args.request;
      request.body = body;
      // The serializer's length (if it set one) was of the empty list.
      for (const name of Object.keys(request.headers ?? {})) {
        if (name.toLowerCase() === 'content-length') delete request.headers?.[name];
      }
      return next(args);
    };
  command.middlewareStack.addRelativeTo(replaceBody as unknown as Middleware, {
    relation: 'after',
    toMiddleware: 'serializerMiddleware',
    name: 'tasklogPutLogEventsBody',
  });
  return command;
}

/** The JSON of a PutLogEvents request, as the SDK would write it. */
export function putLogEventsBody(
  logGroupName: string,
  logStreamName: string,
  events: readonly PutEvent[],
): Buffer {
  // One Buffer per event, joined once: joining the strings instead makes V8 flatten a string of
  // the whole body, several times slower.
  const parts = new Array<Buffer>(events.length + 2);
  parts[0] = Buffer.from(
    `{"logGroupName":${JSON.stringify(logGroupName)},"logStreamName":${JSON.stringify(logStreamName)},"logEvents":[`,
  );
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    const comma = i === 0 ? '' : ',';
    parts[i + 1] = Buffer.from(
      `${comma}{"timestamp":${e.timestamp},"message":${JSON.stringify(e.message)}}`,
    );
  }
  parts[events.length + 1] = Buffer.from(']}');
  return Buffer.concat(parts);
}
