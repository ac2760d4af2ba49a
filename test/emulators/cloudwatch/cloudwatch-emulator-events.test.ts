import {
  FilterLogEventsCommand,
  GetLogEventsCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { beforeEach, describe, expect, it } from 'vitest';
import * as cw from './cloudwatch-emulator-fixture.js';

// PutLogEvents' limits, GetLogEvents' paging and FilterLogEvents' patterns.
cw.startEmulatorForThisFile();

describe('PutLogEvents limits', () => {
  beforeEach(async () => {
    await cw.createStream('s');
  });

  it('accepts 10,000 events and rejects 10,001', async () => {
    await expect(cw.put('s', cw.events(10_000))).resolves.toBeDefined();
    await expect(cw.put('s', cw.events(10_001))).rejects.toMatchObject({
      name: 'InvalidParameterException',
    });
    expect(cw.emulator.events(cw.group, 's')).toHaveLength(10_000);
  });

  it('accepts a batch of exactly 1,048,576 bytes (messages + 26 per event) and rejects 1,048,577', async () => {
    const half = (1_048_576 - 2 * 26) / 2;
    await expect(
      cw.put('s', [
        { timestamp: cw.NOW, message: 'a'.repeat(half) },
        { timestamp: cw.NOW, message: 'b'.repeat(half) },
      ]),
    ).resolves.toBeDefined();
    await expect(
      cw.put('s', [
        { timestamp: cw.NOW, message: 'a'.repeat(half) },
        { timestamp: cw.NOW, message: 'b'.repeat(half + 1) },
      ]),
    ).rejects.toMatchObject({ name: 'InvalidParameterException', message: /Upload too large/ });
  });

  it('counts message bytes as UTF-8', async () => {
    // 'é' is 2 bytes in UTF-8: 524,276 of them are 1,048,552 bytes, over the limit, though only
    // 524,276 UTF-16 code units.
    const big = 'é'.repeat(524_276);
    await expect(cw.put('s', [{ timestamp: cw.NOW, message: big }])).rejects.toMatchObject({
      name: 'InvalidParameterException',
    });
    await expect(
      cw.put('s', [{ timestamp: cw.NOW, message: 'é'.repeat(1_048_550 / 2) }]),
    ).resolves.toBeDefined();
  });

  it('rejects one event whose message is over 1,048,550 bytes', async () => {
    await expect(
      cw.put('s', [{ timestamp: cw.NOW, message: 'x'.repeat(1_048_551) }]),
    ).rejects.toMatchObject({ name: 'InvalidParameterException', message: /Log event too large/ });
  });

  it('rejects a batch that is not in chronological order and stores none of it', async () => {
    await expect(
      cw.put('s', [
        { timestamp: cw.NOW + 1, message: 'second' },
        { timestamp: cw.NOW, message: 'first' },
      ]),
    ).rejects.toMatchObject({ name: 'InvalidParameterException', message: /chronological/ });
    expect(cw.emulator.events(cw.group, 's')).toHaveLength(0);
  });

  it('rejects a batch spanning more than 24 hours', async () => {
    await expect(
      cw.put('s', [
        { timestamp: cw.NOW - cw.DAY - 1, message: 'early' },
        { timestamp: cw.NOW, message: 'late' },
      ]),
    ).rejects.toMatchObject({ name: 'InvalidParameterException', message: /24 hours/ });
  });

  it('drops events older than 14 days or over 2 hours ahead and reports them in rejectedLogEventsInfo', async () => {
    const res = await cw.put('s', [
      { timestamp: cw.NOW - 15 * cw.DAY, message: 'too old 1' },
      { timestamp: cw.NOW - 14 * cw.DAY - 1, message: 'too old 2' },
      { timestamp: cw.NOW, message: 'kept' },
      { timestamp: cw.NOW + 2 * 60 * 60 * 1000 + 1, message: 'too new' },
    ]);
    expect(res.rejectedLogEventsInfo).toEqual({
      tooOldLogEventEndIndex: 2,
      tooNewLogEventStartIndex: 3,
    });
    expect(await cw.readAll('s')).toEqual(['kept']);
  });

  it('ignores sequence tokens', async () => {
    await cw.client.send(
      new PutLogEventsCommand({
        logGroupName: cw.group,
        logStreamName: 's',
        logEvents: cw.events(1),
        sequenceToken: 'stale-token',
      }),
    );
    expect(await cw.readAll('s')).toEqual(['event 0']);
  });
});

describe('GetLogEvents', () => {
  beforeEach(async () => {
    await cw.createStream('s');
  });

  it('keeps events sorted by timestamp, equal timestamps in ingestion order', async () => {
    await cw.put('s', [
      { timestamp: cw.NOW + 10, message: 'c' },
      { timestamp: cw.NOW + 10, message: 'd' },
    ]);
    await cw.put('s', [
      { timestamp: cw.NOW, message: 'a' },
      { timestamp: cw.NOW + 10, message: 'e' },
    ]);
    await cw.put('s', [{ timestamp: cw.NOW + 5, message: 'b' }]);
    expect(await cw.readAll('s')).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('pages forward until the same token comes back', async () => {
    await cw.put('s', cw.events(25));
    const got = await cw.readAll('s', 10);
    expect(got).toEqual(cw.events(25).map((e) => e.message));
  });

  it('returns the token it was given at the end of the stream, and picks up new events with it', async () => {
    const first = await cw.client.send(
      new GetLogEventsCommand({ logGroupName: cw.group, logStreamName: 's', startFromHead: true }),
    );
    expect(first.events).toEqual([]);
    expect(first.nextForwardToken).toBeTruthy();
    expect(first.nextBackwardToken).toBeTruthy();
    const again = await cw.client.send(
      new GetLogEventsCommand({
        logGroupName: cw.group,
        logStreamName: 's',
        nextToken: first.nextForwardToken,
      }),
    );
    expect(again.nextForwardToken).toBe(first.nextForwardToken);
    await cw.put('s', cw.events(2));
    const later = await cw.client.send(
      new GetLogEventsCommand({
        logGroupName: cw.group,
        logStreamName: 's',
        nextToken: first.nextForwardToken,
      }),
    );
    expect(later.events!.map((e) => e.message)).toEqual(['event 0', 'event 1']);
    expect(later.nextForwardToken).not.toBe(first.nextForwardToken);
  });

  it('returns the newest events first page when startFromHead is false, then pages backward', async () => {
    await cw.put('s', cw.events(5));
    const tail = await cw.client.send(
      new GetLogEventsCommand({ logGroupName: cw.group, logStreamName: 's', limit: 2 }),
    );
    expect(tail.events!.map((e) => e.message)).toEqual(['event 3', 'event 4']);
    const before = await cw.client.send(
      new GetLogEventsCommand({
        logGroupName: cw.group,
        logStreamName: 's',
        limit: 2,
        nextToken: tail.nextBackwardToken,
      }),
    );
    expect(before.events!.map((e) => e.message)).toEqual(['event 1', 'event 2']);
  });

  it('filters by startTime (inclusive) and endTime (exclusive)', async () => {
    await cw.put('s', cw.events(10));
    const res = await cw.client.send(
      new GetLogEventsCommand({
        logGroupName: cw.group,
        logStreamName: 's',
        startFromHead: true,
        startTime: cw.NOW + 3,
        endTime: cw.NOW + 6,
      }),
    );
    expect(res.events!.map((e) => e.message)).toEqual(['event 3', 'event 4', 'event 5']);
  });

  it('answers at most about 1 MB per page', async () => {
    await cw.put('s', [{ timestamp: cw.NOW, message: 'a'.repeat(500_000) }]);
    await cw.put('s', [{ timestamp: cw.NOW, message: 'b'.repeat(500_000) }]);
    await cw.put('s', [{ timestamp: cw.NOW, message: 'c'.repeat(500_000) }]);
    const page = await cw.client.send(
      new GetLogEventsCommand({ logGroupName: cw.group, logStreamName: 's', startFromHead: true }),
    );
    expect(page.events).toHaveLength(2);
    expect((await cw.readAll('s')).map((m) => m[0])).toEqual(['a', 'b', 'c']);
  });

  it('refuses a limit above 10,000', async () => {
    await expect(
      cw.client.send(
        new GetLogEventsCommand({ logGroupName: cw.group, logStreamName: 's', limit: 10_001 }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidParameterException' });
  });
});

describe('FilterLogEvents', () => {
  beforeEach(async () => {
    await cw.createStream('job/a');
    await cw.createStream('job/b');
    await cw.createStream('other');
    await cw.put('job/a', [
      { timestamp: cw.NOW, message: '{"offset":0,"length":5,"text":"ERROR"}' },
      { timestamp: cw.NOW + 2, message: '{"offset":5,"length":3,"text":"ok"}' },
    ]);
    await cw.put('job/b', [{ timestamp: cw.NOW + 1, message: 'plain ERROR line' }]);
    await cw.put('other', [{ timestamp: cw.NOW, message: 'elsewhere' }]);
  });

  async function filter(
    input: Omit<ConstructorParameters<typeof FilterLogEventsCommand>[0], 'logGroupName'>,
  ) {
    const pages = await cw.allPages((next) =>
      cw.client.send(new FilterLogEventsCommand({ logGroupName: cw.group, ...input, ...next })),
    );
    return pages.flatMap((page) => page.events!.map((e) => `${e.logStreamName}:${e.message}`));
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
    expect(await filter({ startTime: cw.NOW + 1, endTime: cw.NOW + 2 })).toEqual([
      'job/b:plain ERROR line',
    ]);
  });

  it('refuses logStreamNames together with logStreamNamePrefix', async () => {
    await expect(
      cw.client.send(
        new FilterLogEventsCommand({
          logGroupName: cw.group,
          logStreamNames: ['job/a'],
          logStreamNamePrefix: 'job/',
        }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidParameterException' });
  });
});
