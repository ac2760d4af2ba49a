import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { importOptional } from '../../optional-import.js';

/** The SDK and its clients, built on first use (`tasklog fetch` from a folder never loads it). */
export interface CloudWatchContext {
  sdk: typeof import('@aws-sdk/client-cloudwatch-logs');
  /** Reads, deletes: retried by the SDK (they are safe to repeat). */
  client: CloudWatchLogsClient;
  /**
   * Creates and PutLogEvents: one try each; tasklog retries them itself, because after a lost
   * answer it must look at the stream before resending (the SDK would just resend the batch
   * and store it twice).
   */
  writeClient: CloudWatchLogsClient;
}

export async function createCloudWatchContext(options: {
  region: string;
  endpoint: string | undefined;
  maxAttempts: number;
  requestTimeoutMs: number;
}): Promise<CloudWatchContext> {
  const sdk = await importOptional(
    '@aws-sdk/client-cloudwatch-logs',
    'the cloudwatch store',
    () => import('@aws-sdk/client-cloudwatch-logs'),
  );
  // Credentials: the SDK's default chain only (env, profile, web identity, ECS/EC2 roles).
  const common = {
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    requestHandler: { requestTimeout: options.requestTimeoutMs, connectionTimeout: 10_000 },
  };
  return {
    sdk,
    client: new sdk.CloudWatchLogsClient({
      ...common,
      maxAttempts: options.maxAttempts,
      retryMode: 'standard',
    }),
    writeClient: new sdk.CloudWatchLogsClient({ ...common, maxAttempts: 1 }),
  };
}
