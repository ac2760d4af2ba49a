import { z } from 'zod';
import { attempts, httpUrl, optionalText } from '../../config/fields.js';
import { InvalidInputError } from '../../errors.js';
import { PathTemplate } from '../../path-template.js';

/**
 * The `[cloudwatch]` section: CloudWatch Logs. The only declaration of these settings and their
 * defaults. Credentials come from the AWS SDK's default chain only.
 */
export const cloudwatchSettings = z.object({
  region: optionalText('an AWS region such as eu-west-1').describe(
    'Overrides the region in the log group ARN.',
  ),
  endpoint: httpUrl('endpoint URL').describe('Endpoint override (a VPC endpoint or an emulator).'),
  max_attempts: attempts
    .default(8)
    .describe('Tries per request, retried with exponential backoff and full jitter.'),
});

export type CloudWatchSettings = z.output<typeof cloudwatchSettings>;
export const cloudwatchDefaults: CloudWatchSettings = cloudwatchSettings.parse({});

export interface CloudWatchStoreOptions {
  /** The log group. Created on the first write when missing (needs `logs:CreateLogGroup`). */
  logGroup: string;
  /** AWS region of the log group. */
  region: string;
  /** Account id, only used in `url`. */
  accountId?: string;
  /** Endpoint override (emulators, VPC endpoints). Default: the region's public endpoint. */
  endpoint?: string;
  /** Where each attempt's log lives; the stream name is its rendering with `:` → `_`. */
  pathTemplate?: PathTemplate;
  /** Tries per request, the first included. Default `max_attempts` of the settings. */
  maxAttempts?: number;
  /** First backoff cap of tasklog's own retries (writes), in ms. Default 100. */
  retryBaseDelayMs?: number;
  /** Largest backoff sleep of tasklog's own retries, in ms. Default 20,000. */
  maxRetryDelayMs?: number;
  /**
   * Largest message of one event, in UTF-8 bytes. Default 1,048,550: CloudWatch's 1 MiB event
   * limit less its 26 bytes of overhead. A line up to this size is one plain event; a longer
   * one, and an escape that would be larger, becomes several events. Set 262,118 for an endpoint
   * with the older 256 KiB limit.
   */
  maxPieceBytes?: number;
  /** Events per PutLogEvents, at most 10,000 (the API's limit). Default 10,000. */
  maxBatchEvents?: number;
  /** Bytes per PutLogEvents (UTF-8 messages + 26 per event), at most 1,048,576. Default that. */
  maxBatchBytes?: number;
  /**
   * For streams in the earlier envelope layout (each event carries its offset): a read from an
   * offset at least this large asks FilterLogEvents for `{ $.offset >= offset - 1 MiB }` instead
   * of paging GetLogEvents from the head. Default 4 MiB; `Infinity` turns it off. Streams in
   * today's layout are always read from the head (plain events carry no offset).
   */
  filterFromOffset?: number;
  /** Socket timeout of one request in ms. Default 60,000. */
  requestTimeoutMs?: number;
}

/** PutLogEvents limits (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html). */
export const MAX_BATCH_EVENTS = 10_000;
export const MAX_BATCH_BYTES = 1_048_576;
export const EVENT_OVERHEAD = 26;
/** One event: 1 MiB including its 26 bytes of overhead. */
export const MAX_MESSAGE_BYTES = 1_048_576 - EVENT_OVERHEAD;
/** The smallest message limit: an escape of a one-byte record must fit. */
const MIN_MESSAGE_BYTES = 256;
const GROUP_NAME = /^[.\-_/#A-Za-z0-9]{1,512}$/;

export type ResolvedCloudWatchOptions = Required<
  Omit<CloudWatchStoreOptions, 'accountId' | 'endpoint'>
> & { accountId: string; endpoint: string | undefined };

/** Every option checked and defaulted. Throws InvalidInputError naming the option. */
export function resolveCloudWatchOptions(
  options: CloudWatchStoreOptions,
): ResolvedCloudWatchOptions {
  if (typeof options.logGroup !== 'string' || !GROUP_NAME.test(options.logGroup)) {
    throw new InvalidInputError(
      `CloudWatch log group name must be 1-512 letters, digits, ".", "-", "_", "/" or "#", got ${JSON.stringify(options.logGroup)}`,
    );
  }
  if (typeof options.region !== 'string' || !/^[a-z0-9-]+$/.test(options.region)) {
    throw new InvalidInputError(
      `CloudWatch region must look like us-east-1, got ${JSON.stringify(options.region)}`,
    );
  }
  const int = (name: string, v: number | undefined, def: number, min: number, max: number) => {
    const value = v ?? def;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new InvalidInputError(
        `CloudWatch ${name} must be an integer ${min}-${max}, got ${value}`,
      );
    }
    return value;
  };
  const maxPieceBytes = int(
    'maxPieceBytes',
    options.maxPieceBytes,
    MAX_MESSAGE_BYTES,
    MIN_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES,
  );
  const filterFromOffset = options.filterFromOffset ?? 4 * 1024 * 1024;
  if (!(filterFromOffset >= 0)) {
    throw new InvalidInputError(
      `CloudWatch filterFromOffset must be >= 0, got ${filterFromOffset}`,
    );
  }
  return {
    logGroup: options.logGroup,
    region: options.region,
    accountId: options.accountId ?? '',
    endpoint: options.endpoint,
    pathTemplate: options.pathTemplate ?? new PathTemplate(),
    maxAttempts: int('maxAttempts', options.maxAttempts, cloudwatchDefaults.max_attempts, 1, 100),
    retryBaseDelayMs: int('retryBaseDelayMs', options.retryBaseDelayMs, 100, 1, 60_000),
    maxRetryDelayMs: int('maxRetryDelayMs', options.maxRetryDelayMs, 20_000, 1, 600_000),
    maxPieceBytes,
    maxBatchEvents: int(
      'maxBatchEvents',
      options.maxBatchEvents,
      MAX_BATCH_EVENTS,
      1,
      MAX_BATCH_EVENTS,
    ),
    // One event of the largest message must fit in a batch.
    maxBatchBytes: int(
      'maxBatchBytes',
      options.maxBatchBytes,
      MAX_BATCH_BYTES,
      maxPieceBytes + EVENT_OVERHEAD,
      MAX_BATCH_BYTES,
    ),
    filterFromOffset,
    requestTimeoutMs: int('requestTimeoutMs', options.requestTimeoutMs, 60_000, 1, 3_600_000),
  };
}
