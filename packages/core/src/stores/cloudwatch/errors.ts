import { BackendUnavailableError, NotFoundError, TasklogError } from '../../errors.js';
import {
  type AwsService,
  awsError,
  awsErrorFacts,
  isAwsAbort,
  isAwsTransient,
} from '../shared/aws-errors.js';

// The one mapping of CloudWatch Logs SDK errors onto tasklog's, and which of them are worth
// another try. What every AWS backend reports alike (credentials, region, network, throttling)
// is shared/aws-errors.ts's; what is CloudWatch's own (a missing stream or group, events it
// rejected) is here.

const CLOUDWATCH: AwsService = {
  name: 'CloudWatch Logs',
  credentialsHint: 'and the logs:* permissions',
  regionHint: 'put it in the log group ARN or set cloudwatch.region',
};

export function errorName(err: unknown): string {
  return awsErrorFacts(err).name;
}

export function isNotFound(err: unknown): boolean {
  return errorName(err) === 'ResourceNotFoundException';
}

/** For `.catch`: a missing stream or group is not an error; anything else is rethrown. */
export function unlessNotFound(err: unknown): void {
  if (!isNotFound(err)) throw err;
}

/** Worth another try: throttling, 5xx, timeouts, dropped connections, rejected events. */
export function isTransient(err: unknown): boolean {
  if (err instanceof RejectedEventsError) return true;
  if (isAwsTransient(err)) return true;
  if (err instanceof TasklogError || isAwsAbort(err)) return false;
  // A dropped connection that only its message tells of (no code, no answer).
  const { status, message } = awsErrorFacts(err);
  return status === undefined && /socket hang up|ECONNRESET|EPIPE|timed? ?out/i.test(message ?? '');
}

/**
 * The one place CloudWatch Logs SDK errors become tasklog errors. Every message names the group
 * and the stream (or prefix); every error keeps the SDK's as `cause`. A missing stream or group
 * is NotFoundError: groups are created on the first write, so a missing group only means that
 * nothing was ever stored there.
 */
export function cloudwatchError(
  err: unknown,
  group: string,
  stream: string | undefined,
  action: string,
): TasklogError {
  const where =
    stream === undefined ? `log group ${group}` : `log stream ${stream} in log group ${group}`;
  return awsError(err, CLOUDWATCH, action, where, ({ name, message }, cause) => {
    if (name === 'ResourceNotFoundException') {
      return new NotFoundError(`no ${where} (${message ?? 'not found'})`, cause);
    }
    if (err instanceof RejectedEventsError) {
      return new BackendUnavailableError(`cannot ${action} ${where}: ${err.message}`, cause);
    }
    return undefined;
  });
}

/** A batch CloudWatch accepted only in part; the rejected events are to be sent again. */
export class RejectedEventsError extends Error {
  constructor(readonly count: number) {
    super(
      `CloudWatch rejected ${count} event(s) as more than 14 days old or 2 hours ahead; check the clock`,
    );
    this.name = 'RejectedEventsError';
  }
}
