import {
  FilterLogEventsCommand,
  GetLogEventsCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  client,
  createStream,
  DAY,
  emulator,
  events,
  group,
  NOW,
  put,
  readAll,
  startEmulatorForThisFile,
} from './cloudwatch-emulator-fixture.js';

// PutLogEvents' limits, GetLogEvents' paging and FilterLogEvents' patterns.
startEmulatorForThisFile();

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
