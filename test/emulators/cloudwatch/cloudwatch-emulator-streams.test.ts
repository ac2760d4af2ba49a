import {
  CreateLogGroupCommand,
  CreateLogStreamCommand,
  DeleteLogGroupCommand,
  DeleteLogStreamCommand,
  DescribeLogStreamsCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { beforeEach, describe, expect, it } from 'vitest';
import * as cw from './cloudwatch-emulator-fixture.js';

// Log groups and streams, authentication and faults; the events in them are in
// cloudwatch-emulator-events.test.ts.
cw.startEmulatorForThisFile();

describe('log groups and streams', () => {
  it('creates a stream and describes it with its ARN and event times', async () => {
    await cw.createStream('s1');
    await cw.put('s1', cw.events(3));
    const res = await cw.client.send(new DescribeLogStreamsCommand({ logGroupName: cw.group }));
    expect(res.logStreams).toHaveLength(1);
    expect(res.logStreams![0]).toMatchObject({
      logStreamName: 's1',
      arn: `arn:aws:logs:us-east-1:000000000000:log-group:${cw.group}:log-stream:s1`,
      firstEventTimestamp: cw.NOW,
      lastEventTimestamp: cw.NOW + 2,
      lastIngestionTime: cw.NOW,
    });
  });

  it('answers ResourceAlreadyExistsException for a group or stream that exists', async () => {
    await expect(
      cw.client.send(new CreateLogGroupCommand({ logGroupName: cw.group })),
    ).rejects.toMatchObject({ name: 'ResourceAlreadyExistsException' });
    await cw.createStream('s');
    await expect(cw.createStream('s')).rejects.toMatchObject({
      name: 'ResourceAlreadyExistsException',
      $metadata: { httpStatusCode: 400 },
    });
  });

  it('answers ResourceNotFoundException for a missing group or stream', async () => {
    await expect(
      cw.client.send(new CreateLogStreamCommand({ logGroupName: 'nope', logStreamName: 's' })),
    ).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      message: 'The specified log group does not exist.',
    });
    await expect(cw.put('missing', cw.events(1))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
      message: 'The specified log stream does not exist.',
    });
  });

  it('rejects a stream name containing ":" with InvalidParameterException', async () => {
    await expect(cw.createStream('run_id=2024-01-01T00:00:00')).rejects.toMatchObject({
      name: 'InvalidParameterException',
    });
  });

  it('accepts Airflow-style stream names with "=", "/" and "+"', async () => {
    const name = 'dag_id=d/run_id=scheduled__2024-01-01T00_00_00+00_00/task_id=t/attempt=1.log';
    await cw.createStream(name);
    expect(cw.emulator.streamNames(cw.group)).toEqual([name]);
  });

  it('lists streams by prefix in pages of at most `limit`, following nextToken', async () => {
    for (const name of ['a/3', 'a/1', 'b/1', 'a/2', 'a/4']) await cw.createStream(name);
    const pages = await cw.allPages((next) =>
      cw.client.send(
        new DescribeLogStreamsCommand({
          logGroupName: cw.group,
          logStreamNamePrefix: 'a/',
          limit: 3,
          ...next,
        }),
      ),
    );
    for (const page of pages) expect(page.logStreams!.length).toBeLessThanOrEqual(3);
    const names = pages.flatMap((page) => page.logStreams!.map((s) => s.logStreamName!));
    expect(names).toEqual(['a/1', 'a/2', 'a/3', 'a/4']);
  });

  it('orders streams by last event time, descending on request', async () => {
    for (const [i, name] of ['x', 'y', 'z'].entries()) {
      await cw.createStream(name);
      await cw.put(name, cw.events(1, cw.NOW + [5, 1, 3][i]!));
    }
    const res = await cw.client.send(
      new DescribeLogStreamsCommand({
        logGroupName: cw.group,
        orderBy: 'LastEventTime',
        descending: true,
      }),
    );
    expect(res.logStreams!.map((s) => s.logStreamName)).toEqual(['x', 'z', 'y']);
  });

  it('refuses a DescribeLogStreams limit above 50', async () => {
    await expect(
      cw.client.send(new DescribeLogStreamsCommand({ logGroupName: cw.group, limit: 51 })),
    ).rejects.toMatchObject({ name: 'InvalidParameterException' });
  });

  it('deletes a stream and then the group', async () => {
    await cw.createStream('s');
    await cw.client.send(
      new DeleteLogStreamCommand({ logGroupName: cw.group, logStreamName: 's' }),
    );
    await expect(
      cw.client.send(new DeleteLogStreamCommand({ logGroupName: cw.group, logStreamName: 's' })),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    await cw.client.send(new DeleteLogGroupCommand({ logGroupName: cw.group }));
    await expect(
      cw.client.send(new DescribeLogStreamsCommand({ logGroupName: cw.group })),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
  });
});

describe('authentication', () => {
  it('refuses an unknown access key with UnrecognizedClientException', async () => {
    const denied = cw.newClient({ accessKeyId: 'AKIDDENIED' });
    await expect(
      denied.send(new DescribeLogStreamsCommand({ logGroupName: cw.group })),
    ).rejects.toMatchObject({ name: 'UnrecognizedClientException' });
    denied.destroy();
  });

  it('refuses an unsigned request', async () => {
    const res = await fetch(cw.emulator.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': 'Logs_20140328.DescribeLogStreams',
      },
      body: JSON.stringify({ logGroupName: cw.group }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
  });
});

describe('faults', () => {
  beforeEach(async () => {
    await cw.createStream('s');
  });

  it('sends injected throttling as HTTP 400 ThrottlingException', async () => {
    cw.emulator.faults.add({ match: { path: 'PutLogEvents' }, action: { status: 429 }, times: 1 });
    await expect(cw.put('s', cw.events(1))).rejects.toMatchObject({
      name: 'ThrottlingException',
      $metadata: { httpStatusCode: 400 },
    });
    expect(cw.emulator.events(cw.group, 's')).toHaveLength(0);
  });

  it('sends injected 503 as ServiceUnavailableException', async () => {
    cw.emulator.faults.add({ match: { path: 'GetLogEvents' }, action: { status: 503 }, times: 1 });
    await expect(cw.readAll('s')).rejects.toMatchObject({
      name: 'ServiceUnavailableException',
      $metadata: { httpStatusCode: 503 },
    });
  });

  it('lets the SDK retry through throttling', async () => {
    const retrying = cw.newClient({ maxAttempts: 4 });
    cw.emulator.faults.add({ match: { path: 'PutLogEvents' }, action: { status: 429 }, times: 2 });
    await retrying.send(
      new PutLogEventsCommand({
        logGroupName: cw.group,
        logStreamName: 's',
        logEvents: cw.events(1),
      }),
    );
    retrying.destroy();
    expect(cw.emulator.events(cw.group, 's')).toHaveLength(1);
    expect(cw.emulator.requestLog.slice(-3).map((r) => r.errorType ?? r.status)).toEqual([
      'ThrottlingException',
      'ThrottlingException',
      200,
    ]);
  });

  it('stores nothing when the connection is reset before the work', async () => {
    cw.emulator.faults.add({ match: { path: 'PutLogEvents' }, action: { reset: true }, times: 1 });
    await expect(cw.put('s', cw.events(1))).rejects.toThrow();
    expect(cw.emulator.events(cw.group, 's')).toHaveLength(0);
  });

  it('stores the events but loses the answer on a reset after commit', async () => {
    cw.emulator.faults.add({
      match: { path: 'PutLogEvents' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await expect(cw.put('s', cw.events(2))).rejects.toThrow();
    expect(cw.emulator.events(cw.group, 's')).toHaveLength(2);
    expect(cw.emulator.requestLog.at(-1)).toMatchObject({ operation: 'PutLogEvents', status: 0 });
  });

  it('matches fault rules by operation name', async () => {
    cw.emulator.faults.add({ match: { path: 'DescribeLogStreams' }, action: { status: 500 } });
    await expect(cw.put('s', cw.events(1))).resolves.toBeDefined();
    await expect(
      cw.client.send(new DescribeLogStreamsCommand({ logGroupName: cw.group })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
  });
});
