import {
  CloudWatchLogsClient,
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  DeleteLogGroupCommand,
  DeleteLogStreamCommand,
  DescribeLogStreamsCommand,
  FilterLogEventsCommand,
  GetLogEventsCommand,
  type InputLogEvent,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CloudWatchEmulator, startCloudWatchEmulator } from './index.js';

const DAY = 24 * 60 * 60 * 1000;
/** The emulator's clock: fixed, so "too old" and "too new" are exact. */
const NOW = Date.UTC(2024, 0, 15, 12, 0, 0);

let emulator: CloudWatchEmulator;
let client: CloudWatchLogsClient;
let group = '';
let n = 0;

function newClient(options: { maxAttempts?: number; accessKeyId?: string } = {}) {
  return new CloudWatchLogsClient({
    region: 'us-east-1',
    endpoint: emulator.url,
    credentials: { accessKeyId: options.accessKeyId ?? 'AKIDTEST', secretAccessKey: 'secret' },
    maxAttempts: options.maxAttempts ?? 1,
  });
}

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

async function createStream(name: string) {
  await client.send(new CreateLogStreamCommand({ logGroupName: group, logStreamName: name }));
}

function put(stream: string, logEvents: InputLogEvent[]) {
  return client.send(
    new PutLogEventsCommand({ logGroupName: group, logStreamName: stream, logEvents }),
  );
}

function events(count: number, from = NOW, message = (i: number) => `event ${i}`) {
  return Array.from({ length: count }, (_, i) => ({ timestamp: from + i, message: message(i) }));
}

/** Reads a stream from its head, paging until the forward token comes back unchanged. */
async function readAll(stream: string, limit?: number): Promise<string[]> {
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

describe('log groups and streams', () => {
  it('creates a stream and describes it with its ARN and event times', async () => {
    await createStream('s1');
    await put('s1', events(3));
    const res = await client.send(new DescribeLogStreamsCommand({ logGroupName: group }));
    expect(res.logStreams).toHaveLength(1);
    expect(res.logStreams![0]).toMatchObject({
      logStreamName: 's1',
      arn: `arn:aws:logs:us-east-1:000000000000:log-group:${group}:log-stream:s1`,
      firstEventTimestamp: NOW,
      lastEventTimestamp: NOW + 2,
      lastIngestionTime: NOW,
    });
  });

  it('answers ResourceAlreadyExistsException for a group or stream that exists', async () => {
    await expect(
      client.send(new CreateLogGroupCommand({ logGroupName: group })),
    ).rejects.toMatchObject({ name: 'ResourceAlreadyExistsException' });
    await createStream('s');
    await expect(createStream('s')).rejects.toMatchObject({
      name: 'ResourceAlreadyExistsException',
      $metadata: { httpStatusCode: 400 },
    });
  });

  it('answers ResourceNotFoundException for a missing group or stream', async () => {
    await expect(
      client.send(new CreateLogStreamCommand({ logGroupName: 'nope', logStreamName: 's' })),
    ).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      message: 'The specified log group does not exist.',
    });
    await expect(put('missing', events(1))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      message: 'The specified log stream does not exist.',
    });
  });

  it('rejects a stream name containing ":" with InvalidParameterException', async () => {
    await expect(createStream('run_id=2024-01-01T00:00:00')).rejects.toMatchObject({
      name: 'InvalidParameterException',
    });
  });

  it('accepts Airflow-style stream names with "=", "/" and "+"', async () => {
    const name = 'dag_id=d/run_id=scheduled__2024-01-01T00_00_00+00_00/task_id=t/attempt=1.log';
    await createStream(name);
    expect(emulator.streamNames(group)).toEqual([name]);
  });

  it('lists streams by prefix in pages of at most `limit`, following nextToken', async () => {
    for (const name of ['a/3', 'a/1', 'b/1', 'a/2', 'a/4']) await createStream(name);
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new DescribeLogStreamsCommand({
          logGroupName: group,
          logStreamNamePrefix: 'a/',
          limit: 3,
          ...(token ? { nextToken: token } : {}),
        }),
      );
      expect(page.logStreams!.length).toBeLessThanOrEqual(3);
      names.push(...page.logStreams!.map((s) => s.logStreamName!));
      token = page.nextToken;
    } while (token);
    expect(names).toEqual(['a/1', 'a/2', 'a/3', 'a/4']);
  });

  it('orders streams by last event time, descending on request', async () => {
    for (const [i, name] of ['x', 'y', 'z'].entries()) {
      await createStream(name);
      await put(name, events(1, NOW + [5, 1, 3][i]!));
    }
    const res = await client.send(
      new DescribeLogStreamsCommand({
        logGroupName: group,
        orderBy: 'LastEventTime',
        descending: true,
      }),
    );
    expect(res.logStreams!.map((s) => s.logStreamName)).toEqual(['x', 'z', 'y']);
  });

  it('refuses a DescribeLogStreams limit above 50', async () => {
    await expect(
      client.send(new DescribeLogStreamsCommand({ logGroupName: group, limit: 51 })),
    ).rejects.toMatchObject({ name: 'InvalidParameterException' });
  });

  it('deletes a stream and then the group', async () => {
    await createStream('s');
    await client.send(new DeleteLogStreamCommand({ logGroupName: group, logStreamName: 's' }));
    await expect(
      client.send(new DeleteLogStreamCommand({ logGroupName: group, logStreamName: 's' })),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await client.send(new DeleteLogGroupCommand({ logGroupName: group }));
    await expect(
      client.send(new DescribeLogStreamsCommand({ logGroupName: group })),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});

describe('PutLogEvents limits', () => {
  beforeEach(async () => {
    await createStream('s');
  });

  it('accepts 10,000 events and rejects 10,001', async () => {
    await expect(put('s', events(10_000))).resolves.toBeDefined();
    await expect(put('s', events(10_001))).rejects.toMatchObject({
      name: 'InvalidParameterException',
    });
    expect(emulator.events(group, 's')).toHaveLength(10_000);
  });

  it('accepts a batch of exactly 1,048,576 bytes (messages + 26 per event) and rejects 1,048,577', async () => {
    const half = (1_048_576 - 2 * 26) / 2;
    await expect(
      put('s', [
        { timestamp: NOW, message: 'a'.repeat(half) },
        { timestamp: NOW, message: 'b'.repeat(half) },
      ]),
    ).resolves.toBeDefined();
    await expect(
      put('s', [
        { timestamp: NOW, message: 'a'.repeat(half) },
        { timestamp: NOW, message: 'b'.repeat(half + 1) },
      ]),
    ).rejects.toMatchObject({ name: 'InvalidParameterException', message: /Upload too large/ });
  });

  it('counts message bytes as UTF-8', async () => {
    // 'é' is 2 bytes in UTF-8: 524,276 of them are 1,048,552 bytes, over the limit, though only
    // 524,276 UTF-16 code units.
    const big = 'é'.repeat(524_276);
    await expect(put('s', [{ timestamp: NOW, message: big }])).rejects.toMatchObject({
      name: 'InvalidParameterException',
    });
    await expect(
      put('s', [{ timestamp: NOW, message: 'é'.repeat(1_048_550 / 2) }]),
    ).resolves.toBeDefined();
  });

  it('rejects one event whose message is over 1,048,550 bytes', async () => {
    await expect(
      put('s', [{ timestamp: NOW, message: 'x'.repeat(1_048_551) }]),
    ).rejects.toMatchObject({ name: 'InvalidParameterException', message: /Log event too large/ });
  });

  it('rejects a batch that is not in chronological order and stores none of it', async () => {
    await expect(
      put('s', [
        { timestamp: NOW + 1, message: 'second' },
        { timestamp: NOW, message: 'first' },
      ]),
    ).rejects.toMatchObject({ name: 'InvalidParameterException', message: /chronological/ });
    expect(emulator.events(group, 's')).toHaveLength(0);
  });

  it('rejects a batch spanning more than 24 hours', async () => {
    await expect(
      put('s', [
        { timestamp: NOW - DAY - 1, message: 'early' },
        { timestamp: NOW, message: 'late' },
      ]),
    ).rejects.toMatchObject({ name: 'InvalidParameterException', message: /24 hours/ });
  });

  it('drops events older than 14 days or over 2 hours ahead and reports them in rejectedLogEventsInfo', async () => {
    const res = await put('s', [
      { timestamp: NOW - 15 * DAY, message: 'too old 1' },
      { timestamp: NOW - 14 * DAY - 1, message: 'too old 2' },
      { timestamp: NOW, message: 'kept' },
      { timestamp: NOW + 2 * 60 * 60 * 1000 + 1, message: 'too new' },
    ]);
    expect(res.rejectedLogEventsInfo).toEqual({
      tooOldLogEventEndIndex: 2,
      tooNewLogEventStartIndex: 3,
    });
    expect(await readAll('s')).toEqual(['kept']);
  });

  it('ignores sequence tokens', async () => {
    await client.send(
      new PutLogEventsCommand({
        logGroupName: group,
        logStreamName: 's',
        logEvents: events(1),
        sequenceToken: 'stale-token',
      }),
    );
    expect(await readAll('s')).toEqual(['event 0']);
  });
});

describe('GetLogEvents', () => {
  beforeEach(async () => {
    await createStream('s');
  });

  it('keeps events sorted by timestamp, equal timestamps in ingestion order', async () => {
    await put('s', [
      { timestamp: NOW + 10, message: 'c' },
      { timestamp: NOW + 10, message: 'd' },
    ]);
    await put('s', [
      { timestamp: NOW, message: 'a' },
      { timestamp: NOW + 10, message: 'e' },
    ]);
    await put('s', [{ timestamp: NOW + 5, message: 'b' }]);
    expect(await readAll('s')).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('pages forward until the same token comes back', async () => {
    await put('s', events(25));
    const got = await readAll('s', 10);
    expect(got).toEqual(events(25).map((e) => e.message));
  });

  it('returns the token it was given at the end of the stream, and picks up new events with it', async () => {
    const first = await client.send(
      new GetLogEventsCommand({ logGroupName: group, logStreamName: 's', startFromHead: true }),
    );
    expect(first.events).toEqual([]);
    expect(first.nextForwardToken).toBeTruthy();
    expect(first.nextBackwardToken).toBeTruthy();
    const again = await client.send(
      new GetLogEventsCommand({
        logGroupName: group,
        logStreamName: 's',
        nextToken: first.nextForwardToken,
      }),
    );
    expect(again.nextForwardToken).toBe(first.nextForwardToken);
    await put('s', events(2));
    const later = await client.send(
      new GetLogEventsCommand({
        logGroupName: group,
        logStreamName: 's',
        nextToken: first.nextForwardToken,
      }),
    );
    expect(later.events!.map((e) => e.message)).toEqual(['event 0', 'event 1']);
    expect(later.nextForwardToken).not.toBe(first.nextForwardToken);
  });

  it('returns the newest events first page when startFromHead is false, then pages backward', async () => {
    await put('s', events(5));
    const tail = await client.send(
      new GetLogEventsCommand({ logGroupName: group, logStreamName: 's', limit: 2 }),
    );
    expect(tail.events!.map((e) => e.message)).toEqual(['event 3', 'event 4']);
    const before = await client.send(
      new GetLogEventsCommand({
        logGroupName: group,
        logStreamName: 's',
        limit: 2,
        nextToken: tail.nextBackwardToken,
      }),
    );
    expect(before.events!.map((e) => e.message)).toEqual(['event 1', 'event 2']);
  });

  it('filters by startTime (inclusive) and endTime (exclusive)', async () => {
    await put('s', events(10));
    const res = await client.send(
      new GetLogEventsCommand({
        logGroupName: group,
        logStreamName: 's',
        startFromHead: true,
        startTime: NOW + 3,
        endTime: NOW + 6,
      }),
    );
    expect(res.events!.map((e) => e.message)).toEqual(['event 3', 'event 4', 'event 5']);
  });

  it('answers at most about 1 MB per page', async () => {
    await put('s', [{ timestamp: NOW, message: 'a'.repeat(500_000) }]);
    await put('s', [{ timestamp: NOW, message: 'b'.repeat(500_000) }]);
    await put('s', [{ timestamp: NOW, message: 'c'.repeat(500_000) }]);
    const page = await client.send(
      new GetLogEventsCommand({ logGroupName: group, logStreamName: 's', startFromHead: true }),
    );
    expect(page.events).toHaveLength(2);
    expect((await readAll('s')).map((m) => m[0])).toEqual(['a', 'b', 'c']);
  });

  it('refuses a limit above 10,000', async () => {
    await expect(
      client.send(
        new GetLogEventsCommand({ logGroupName: group, logStreamName: 's', limit: 10_001 }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidParameterException' });
  });
});

describe('FilterLogEvents', () => {
  beforeEach(async () => {
    await createStream('job/a');
    await createStream('job/b');
    await createStream('other');
    await put('job/a', [
      { timestamp: NOW, message: '{"offset":0,"length":5,"text":"ERROR"}' },
      { timestamp: NOW + 2, message: '{"offset":5,"length":3,"text":"ok"}' },
    ]);
    await put('job/b', [{ timestamp: NOW + 1, message: 'plain ERROR line' }]);
    await put('other', [{ timestamp: NOW, message: 'elsewhere' }]);
  });

  async function filter(
    input: Omit<ConstructorParameters<typeof FilterLogEventsCommand>[0], 'logGroupName'>,
  ) {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new FilterLogEventsCommand({
          logGroupName: group,
          ...input,
          ...(token ? { nextToken: token } : {}),
        }),
      );
      out.push(...page.events!.map((e) => `${e.logStreamName}:${e.message}`));
      token = page.nextToken;
    } while (token);
    return out;
  }

  it('returns every event of the prefixed streams in timestamp order with an empty pattern', async () => {
    expect(await filter({ logStreamNamePrefix: 'job/', limit: 1 })).toEqual([
      'job/a:{"offset":0,"length":5,"text":"ERROR"}',
      'job/b:plain ERROR line',
      'job/a:{"offset":5,"length":3,"text":"ok"}',
    ]);
  });

  it('matches a JSON pattern with >= on a number field', async () => {
    expect(await filter({ logStreamNames: ['job/a'], filterPattern: '{ $.offset >= 5 }' })).toEqual(
      ['job/a:{"offset":5,"length":3,"text":"ok"}'],
    );
  });

  it('matches a JSON pattern with = on a string field', async () => {
    expect(await filter({ filterPattern: '{ $.text = "ERR*" }' })).toEqual([
      'job/a:{"offset":0,"length":5,"text":"ERROR"}',
    ]);
  });

  it('matches terms anywhere in the message', async () => {
    expect(await filter({ filterPattern: 'ERROR' })).toEqual([
      'job/a:{"offset":0,"length":5,"text":"ERROR"}',
      'job/b:plain ERROR line',
    ]);
  });

  it('honours startTime and endTime', async () => {
    expect(await filter({ startTime: NOW + 1, endTime: NOW + 2 })).toEqual([
      'job/b:plain ERROR line',
    ]);
  });

  it('refuses logStreamNames together with logStreamNamePrefix', async () => {
    await expect(
      client.send(
        new FilterLogEventsCommand({
          logGroupName: group,
          logStreamNames: ['job/a'],
          logStreamNamePrefix: 'job/',
        }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidParameterException' });
  });
});

describe('authentication', () => {
  it('refuses an unknown access key with UnrecognizedClientException', async () => {
    const denied = newClient({ accessKeyId: 'AKIDDENIED' });
    await expect(
      denied.send(new DescribeLogStreamsCommand({ logGroupName: group })),
    ).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
    denied.destroy();
  });

  it('refuses an unsigned request', async () => {
    const res = await fetch(emulator.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': 'Logs_20140328.DescribeLogStreams',
      },
      body: JSON.stringify({ logGroupName: group }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
  });
});

describe('faults', () => {
  beforeEach(async () => {
    await createStream('s');
  });

  it('sends injected throttling as HTTP 400 ThrottlingException', async () => {
    emulator.faults.add({ match: { path: 'PutLogEvents' }, action: { status: 429 }, times: 1 });
    await expect(put('s', events(1))).rejects.toMatchObject({
      name: 'ThrottlingException',
      $metadata: { httpStatusCode: 400 },
    });
    expect(emulator.events(group, 's')).toHaveLength(0);
  });

  it('sends injected 503 as ServiceUnavailableException', async () => {
    emulator.faults.add({ match: { path: 'GetLogEvents' }, action: { status: 503 }, times: 1 });
    await expect(readAll('s')).rejects.toMatchObject({
      name: 'ServiceUnavailableException',
      $metadata: { httpStatusCode: 503 },
    });
  });

  it('lets the SDK retry through throttling', async () => {
    const retrying = newClient({ maxAttempts: 4 });
    emulator.faults.add({ match: { path: 'PutLogEvents' }, action: { status: 429 }, times: 2 });
    await retrying.send(
      new PutLogEventsCommand({ logGroupName: group, logStreamName: 's', logEvents: events(1) }),
    );
    retrying.destroy();
    expect(emulator.events(group, 's')).toHaveLength(1);
    expect(emulator.requestLog.slice(-3).map((r) => r.errorType ?? r.status)).toEqual([
      'ThrottlingException',
      'ThrottlingException',
      200,
    ]);
  });

  it('stores nothing when the connection is reset before the work', async () => {
    emulator.faults.add({ match: { path: 'PutLogEvents' }, action: { reset: true }, times: 1 });
    await expect(put('s', events(1))).rejects.toThrow();
    expect(emulator.events(group, 's')).toHaveLength(0);
  });

  it('stores the events but loses the answer on a reset after commit', async () => {
    emulator.faults.add({
      match: { path: 'PutLogEvents' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await expect(put('s', events(2))).rejects.toThrow();
    expect(emulator.events(group, 's')).toHaveLength(2);
    expect(emulator.requestLog.at(-1)).toMatchObject({ operation: 'PutLogEvents', status: 0 });
  });

  it('matches fault rules by operation name', async () => {
    emulator.faults.add({ match: { path: 'DescribeLogStreams' }, action: { status: 500 } });
    await expect(put('s', events(1))).resolves.toBeDefined();
    await expect(
      client.send(new DescribeLogStreamsCommand({ logGroupName: group })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
  });
});
