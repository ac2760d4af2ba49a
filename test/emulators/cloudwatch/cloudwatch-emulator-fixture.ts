import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  GetLogEventsCommand,
  type InputLogEvent,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { type CloudWatchEmulator, startCloudWatchEmulator } from './index.js';

/**
 * What the emulator's test files share: one emulator per file on a fixed clock, the SDK client
 * pointed at it, and a new log group per test. `emulator`, `client` and `group` are set by the
 * hooks `startEmulatorForThisFile()` registers.
 */
export const DAY = 24 * 60 * 60 * 1000;
/** The emulator's clock: fixed, so "too old" and "too new" are exact. */
export const NOW = Date.UTC(2024, 0, 15, 12, 0, 0);

export let emulator: CloudWatchEmulator;
export let client: CloudWatchLogsClient;
/** The log group of the running test. */
export let group = '';
let n = 0;

export function newClient(options: { maxAttempts?: number; accessKeyId?: string } = {}) {
  return new CloudWatchLogsClient({
    region: 'us-east-1',
    endpoint: emulator.url,
    credentials: { accessKeyId: options.accessKeyId ?? 'AKIDTEST', secretAccessKey: 'secret' },
    maxAttempts: options.maxAttempts ?? 1,
  });
}

/** Starts the emulator before the file's first test and gives every test a new log group. */
export function startEmulatorForThisFile(): void {
  beforeAll(async () => {
    emulator = await startCloudWatchEmulator({ now: () => NOW, deniedAccessKeys: ['AKIDDENIED'] });
    client = newClient();
  });

  afterAll(async () => {
    client?.destroy();
    await emulator?.close();
  });

  beforeEach(async () => {
    group = `/tasklog/test-${n++}`;
    await client.send(new CreateLogGroupCommand({ logGroupName: group }));
  });

  afterEach(() => {
    emulator.faults.clear();
  });
}

export async function createStream(name: string) {
  await client.send(new CreateLogStreamCommand({ logGroupName: group, logStreamName: name }));
}

export function put(stream: string, logEvents: InputLogEvent[]) {
  return client.send(
    new PutLogEventsCommand({ logGroupName: group, logStreamName: stream, logEvents }),
  );
}

export function events(count: number, from = NOW, message = (i: number) => `event ${i}`) {
  return Array.from({ length: count }, (_, i) => ({ timestamp: from + i, message: message(i) }));
}

/**
 * Every page of a paged call: `send` gets `{}` first, then `{ nextToken }` from the page before,
 * until a page comes without a nextToken.
 */
export async function allPages<Page extends { nextToken?: string }>(
  send: (next: { nextToken?: string }) => Promise<Page>,
): Promise<Page[]> {
  const pages: Page[] = [];
  let token: string | undefined;
  do {
    const page = await send(token ? { nextToken: token } : {});
    pages.push(page);
    token = page.nextToken;
  } while (token);
  return pages;
}

/** Reads a stream from its head, paging until the forward token comes back unchanged. */
export async function readAll(stream: string, limit?: number): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  for (;;) {
    const page = await client.send(
      new GetLogEventsCommand({
        logGroupName: group,
        logStreamName: stream,
        startFromHead: true,
        ...(token ? { nextToken: token } : {}),
        ...(limit ? { limit } : {}),
      }),
    );
    out.push(...(page.events ?? []).map((e) => e.message!));
    if (page.nextForwardToken === token) return out;
    token = page.nextForwardToken;
  }
}
