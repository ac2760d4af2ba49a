/**
 * The documented limits of the CloudWatch Logs operations the emulator serves.
 * Reference: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/
 */

/** PutLogEvents: at most this many events per call. */
export const MAX_BATCH_EVENTS = 10_000;
/** PutLogEvents: sum of UTF-8 message bytes + EVENT_OVERHEAD per event. */
export const MAX_BATCH_BYTES = 1_048_576;
export const EVENT_OVERHEAD = 26;
/** One event: 1 MiB including its 26 bytes of overhead (the current PutLogEvents page). */
export const MAX_EVENT_MESSAGE_BYTES = 1_048_576 - EVENT_OVERHEAD;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Valid events of one batch may span at most 24 hours. */
export const MAX_BATCH_SPAN_MS = DAY_MS;
/** Events older than this are rejected (reported, dropped), not the whole batch. */
export const MAX_EVENT_AGE_MS = 14 * DAY_MS;
/** Events further ahead than this are rejected (reported, dropped). */
export const MAX_EVENT_FUTURE_MS = 2 * 60 * 60 * 1000;
/** GetLogEvents / FilterLogEvents answer at most 10,000 events and about 1 MB. */
export const MAX_READ_EVENTS = 10_000;
export const MAX_READ_BYTES = 1_048_576;
/** DescribeLogStreams answers at most 50 streams a page. */
export const MAX_DESCRIBE_LIMIT = 50;
