import {
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  DeleteLogGroupCommand,
  DeleteLogStreamCommand,
  DescribeLogStreamsCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  client,
  createStream,
  emulator,
  events,
  group,
  NOW,
  newClient,
  put,
  readAll,
  startEmulatorForThisFile,
} from './cloudwatch-emulator-fixture.js';

// Log groups and streams, authentication and faults; the events in them are in
// cloudwatch-emulator-events.test.ts.
startEmulatorForThisFile();

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
