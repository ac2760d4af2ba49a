import { createHash } from 'node:crypto';
import {
  CloudWatchLogsClient,
  CreateLogStreamCommand,
  GetLogEventsCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import {
  AbortedError,
  type AttemptKey,
  attemptKey,
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  InvalidInputError,
  type LogStore,
  NotFoundError,
  PathTemplate,
} from '@tasklog/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CloudWatchStore,
  type CloudWatchStoreOptions,
} from '../../packages/core/src/stores/cloudwatch-store.js';
import {
  type CloudWatchEmulator,
  EVENT_OVERHEAD,
  startCloudWatchEmulator,
} from '../emulators/cloudwatch/index.js';

process.env.AWS_ACCESS_KEY_ID ??= 'AKIDTASKLOGTEST';
process.env.AWS_SECRET_ACCESS_KEY ??= 'tasklog-test-secret';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const RUN_ID = 'scheduled__2024-01-01T00:00:00+00:00';
const AIRFLOW_STREAM =
  'dag_id=d/run_id=scheduled__2024-01-01T00_00_00+00_00/task_id=t/attempt=1.log';
/** The event limit of older CloudWatch pages, which tasklog stays within. */
const EVENT_LIMIT = 256 * 1024;

let emulator: CloudWatchEmulator;
let n = 0;
let group = '';
const stores: LogStore[] = [];

beforeAll(async () => {
  emulator = await startCloudWatchEmulator({ deniedAccessKeys: ['AKIDDENIED'] });
});

afterEach(async () => {
  emulator.faults.clear();
  for (const s of stores.splice(0)) await s.close();
});

afterAll(async () => {
  await emulator?.close();
});

function arn(name: string) {
  return `cloudwatch://arn:aws:logs:us-east-1:000000000000:log-group:${name}`;
}

/** A store on a fresh log group. */
function newStore(overrides: Partial<CloudWatchStoreOptions> = {}): CloudWatchStore {
  group = `/airflow/task-logs-${n++}`;
  const store = CloudWatchStore.fromUrl(
    arn(group),
    { cloudwatch: { endpoint: emulator.url, max_attempts: 4 } },
    { maxRetryDelayMs: 50, ...overrides },
  );
  stores.push(store);
  return store;
}

function key(overrides: Partial<AttemptKey> = {}): AttemptKey {
  return attemptKey({ dagId: 'd', runId: RUN_ID, taskId: 't', tryNumber: 1, ...overrides });
}

async function write(store: LogStore, k: AttemptKey, content: Buffer): Promise<void> {
  const writer = await store.openWriter(k);
  await writer.append(content);
  await writer.finish({ size: content.length, sha256: sha256(content) });
}

async function readAll(store: LogStore, k: AttemptKey, offset = 0): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of store.read(k, { offset })) parts.push(Buffer.from(c.bytes));
  return Buffer.concat(parts);
}

/** The raw events' messages, parsed. */
function rawRecords(stream: string): Record<string, unknown>[] {
  return emulator.events(group, stream).map((e) => JSON.parse(e.message));
}

function sdkClient() {
  return new CloudWatchLogsClient({ region: 'us-east-1', endpoint: emulator.url, maxAttempts: 1 });
}

describe('URLs and stream names', () => {
  it("takes the log group and region from the ARN, as Airflow's handler does", () => {
    const store = CloudWatchStore.fromUrl(
      'cloudwatch://arn:aws:logs:eu-west-2:123456789012:log-group:/airflow/logs:*',
    );
    expect(store.logGroup).toBe('/airflow/logs');
    expect(store.region).toBe('eu-west-2');
    expect(store.url).toBe(
      'cloudwatch://arn:aws:logs:eu-west-2:123456789012:log-group:/airflow/logs',
    );
  });

  it('lets cloudwatch.region override the region of the ARN', () => {
    const store = CloudWatchStore.fromUrl(arn('g'), { cloudwatch: { region: 'ap-south-1' } });
    expect(store.region).toBe('ap-south-1');
  });

  it('refuses a URL that is not a log group ARN with InvalidInputError', () => {
    expect(() => CloudWatchStore.fromUrl('cloudwatch://my-group')).toThrow(InvalidInputError);
    expect(() =>
      CloudWatchStore.fromUrl('cloudwatch://arn:aws:logs:us-east-1:1:log-group:bad name'),
    ).toThrow(InvalidInputError);
  });

  it("names the stream like Airflow's CloudwatchTaskHandler: the relative path with ':' as '_'", async () => {
    const store = newStore();
    expect(store.streamName(key())).toBe(AIRFLOW_STREAM);
    await write(store, key(), Buffer.from('hello\n'));
    expect(emulator.streamNames(group)).toEqual([AIRFLOW_STREAM]);
    expect(store.streamName(key({ mapIndex: 3, tryNumber: 2 }))).toBe(
      'dag_id=d/run_id=scheduled__2024-01-01T00_00_00+00_00/task_id=t/map_index=3/attempt=2.log',
    );
  });
});

describe('events', () => {
  it('starts a stream with a header naming the attempt and ends it with the size and sha256', async () => {
    const store = newStore();
    const content = Buffer.from('one\ntwo\n');
    await write(store, key(), content);
    expect(rawRecords(AIRFLOW_STREAM)).toEqual([
      {
        offset: 0,
        length: 0,
        key: { dagId: 'd', runId: RUN_ID, taskId: 't', mapIndex: -1, tryNumber: 1 },
      },
      { offset: 0, length: 4, text: 'one' },
      { offset: 4, length: 4, text: 'two' },
      { offset: 8, length: 0, end: true, sha256: sha256(content) },
    ]);
    expect(emulator.events(group, AIRFLOW_STREAM)[1]!.message).toBe(
      '{"offset":0,"length":4,"text":"one"}',
    );
  });

  it('stamps events with non-decreasing timestamps in offset order', async () => {
    const store = newStore();
    const writer = await store.openWriter(key());
    for (let i = 0; i < 50; i++) {
      await writer.append(Buffer.from(`line ${i}\n`));
      if (i % 7 === 0) await writer.flush();
    }
    await writer.abort();
    const events = emulator.events(group, AIRFLOW_STREAM);
    const offsets = events.map((e) => JSON.parse(e.message).offset as number);
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.timestamp).toBeGreaterThanOrEqual(events[i - 1]!.timestamp);
      expect(offsets[i]).toBeGreaterThanOrEqual(offsets[i - 1]!);
    }
  });

  it('splits a 300 KiB line into events within the event limit and joins it on read', async () => {
    const store = newStore();
    const line = Buffer.concat([Buffer.alloc(300 * 1024, 'x'), Buffer.from('\n')]);
    await write(store, key(), line);
    const data = emulator
      .events(group, AIRFLOW_STREAM)
      .filter((e) => JSON.parse(e.message).length > 0);
    expect(data).toHaveLength(Math.ceil((300 * 1024) / store.maxPieceBytes));
    for (const e of data) expect(e.bytes).toBeLessThanOrEqual(EVENT_LIMIT);
    expect((await readAll(store, key())).equals(line)).toBe(true);
  });

  it('stays within the event limit for a line of control characters, which JSON escapes 6-fold', async () => {
    const store = newStore();
    const line = Buffer.concat([Buffer.alloc(300 * 1024, 0x01), Buffer.from('\n')]);
    await write(store, key(), line);
    for (const e of emulator.events(group, AIRFLOW_STREAM)) {
      expect(e.bytes + EVENT_OVERHEAD).toBeLessThanOrEqual(EVENT_LIMIT);
    }
    expect((await readAll(store, key())).equals(line)).toBe(true);
  });

  it('round-trips empty lines, CRLF, multi-byte and invalid UTF-8 and a last line without newline', async () => {
    const store = newStore();
    const content = Buffer.concat([
      Buffer.from('\n\nfirst\r\n\r\né€𝄞 text\n'),
      Buffer.from([0xff, 0xfe, 0x41, 0x0a, 0xc3]),
      Buffer.from('no newline at the end'),
    ]);
    await write(store, key(), content);
    expect((await readAll(store, key())).equals(content)).toBe(true);
    const records = rawRecords(AIRFLOW_STREAM);
    expect(records).toContainEqual({ offset: 0, length: 1, text: '' });
    expect(records).toContainEqual({ offset: 9, length: 2, text: '\r' });
    expect(records.some((r) => typeof r.base64 === 'string')).toBe(true);
  });

  it('ships 25,000 lines in PutLogEvents batches of at most 10,000 events', async () => {
    const store = newStore();
    const content = Buffer.from(Array.from({ length: 25_000 }, (_, i) => `line ${i}\n`).join(''));
    const before = emulator.requestLog.length;
    await write(store, key(), content);
    const puts = emulator.requestLog.slice(before).filter((r) => r.operation === 'PutLogEvents');
    // header, 3 batches of lines, end record
    expect(puts).toHaveLength(5);
    expect(puts.every((r) => r.status === 200)).toBe(true);
    expect(sha256(await readAll(store, key()))).toBe(sha256(content));
  });

  it('keeps batches within the byte limit, counting 26 bytes per event', async () => {
    const store = newStore({ maxBatchBytes: 300_000 });
    const content = Buffer.from(
      Array.from({ length: 3_000 }, (_, i) => `${'y'.repeat(200)} ${i}\n`).join(''),
    );
    const before = emulator.requestLog.length;
    await write(store, key(), content);
    const puts = emulator.requestLog.slice(before).filter((r) => r.operation === 'PutLogEvents');
    expect(puts.length).toBeGreaterThan(3);
    expect(puts.every((r) => r.status === 200)).toBe(true);
    expect((await readAll(store, key())).equals(content)).toBe(true);
  });
});

describe('reading', () => {
  it('reads from a large offset with FilterLogEvents `{ $.offset >= N }` instead of from the head', async () => {
    const store = newStore({ filterFromOffset: 2 * 1024 * 1024 });
    const content = Buffer.from(
      Array.from({ length: 40_000 }, (_, i) => `${i} ${'z'.repeat(70)}\n`).join(''),
    );
    await write(store, key(), content);
    const before = emulator.requestLog.length;
    const offset = Math.floor(content.length * 0.9) + 3;
    expect((await readAll(store, key(), offset)).equals(content.subarray(offset))).toBe(true);
    const ops = new Set(emulator.requestLog.slice(before).map((r) => r.operation));
    expect(ops).toEqual(new Set(['FilterLogEvents']));
  });

  it('answers OffsetOutOfRange past the end on the FilterLogEvents path too', async () => {
    const store = newStore({ filterFromOffset: 0 });
    const content = Buffer.alloc(2 * 1024 * 1024 + 10, 'a');
    await write(store, key(), content);
    await expect(readAll(store, key(), content.length + 1)).rejects.toMatchObject({
      name: 'OffsetOutOfRangeError',
      size: content.length,
    });
  });

  it('returns each byte once when the stream holds duplicated and reordered records', async () => {
    const store = newStore();
    await write(store, key(), Buffer.from('seed\n'));
    await store.delete(key());
    const client = sdkClient();
    await client.send(
      new CreateLogStreamCommand({ logGroupName: group, logStreamName: AIRFLOW_STREAM }),
    );
    const now = Date.now();
    const messages = [
      { offset: 0, length: 0, key: { ...key() } },
      { offset: 4, length: 4, text: 'two' },
      { offset: 0, length: 4, text: 'one' },
      { offset: 4, length: 4, text: 'two' },
      { offset: 0, length: 4, text: 'one' },
      { offset: 8, length: 6, text: 'three' },
    ];
    await client.send(
      new PutLogEventsCommand({
        logGroupName: group,
        logStreamName: AIRFLOW_STREAM,
        logEvents: messages.map((m) => ({ timestamp: now, message: JSON.stringify(m) })),
      }),
    );
    client.destroy();
    expect((await readAll(store, key())).toString()).toBe('one\ntwo\nthree\n');
    expect(await store.stat(key())).toMatchObject({ size: 14, complete: false });
  });

  it('throws IntegrityError for a complete log with a gap', async () => {
    const store = newStore();
    const client = sdkClient();
    emulator.createLogGroup(group);
    await client.send(
      new CreateLogStreamCommand({ logGroupName: group, logStreamName: AIRFLOW_STREAM }),
    );
    const messages = [
      { offset: 0, length: 0, key: { ...key() } },
      { offset: 0, length: 4, text: 'one' },
      { offset: 8, length: 6, text: 'three' },
      { offset: 14, length: 0, end: true, sha256: '0'.repeat(64) },
    ];
    await client.send(
      new PutLogEventsCommand({
        logGroupName: group,
        logStreamName: AIRFLOW_STREAM,
        logEvents: messages.map((m) => ({ timestamp: Date.now(), message: JSON.stringify(m) })),
      }),
    );
    client.destroy();
    await expect(readAll(store, key())).rejects.toBeInstanceOf(IntegrityError);
  });

  it('throws NotFoundError when the log group does not exist', async () => {
    const store = newStore();
    await expect(readAll(store, key())).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.stat(key())).toBeUndefined();
  });

  it('throws AbortedError when the read is aborted', async () => {
    const store = newStore();
    await write(store, key(), Buffer.from('a\nb\n'));
    const controller = new AbortController();
    controller.abort();
    await expect(
      (async () => {
        for await (const _ of store.read(key(), { signal: controller.signal })) {
          // nothing
        }
      })(),
    ).rejects.toBeInstanceOf(AbortedError);
  });
});

describe('listing and name collisions', () => {
  it("lists attempts with ':' in their run id intact, read from each stream's header", async () => {
    const store = newStore();
    const a = key({ runId: 'manual__2024-05-01T10:00:00+00:00' });
    const b = key({ runId: 'manual__2024-05-01T11:00:00+00:00', mapIndex: 0 });
    await write(store, a, Buffer.from('a\n'));
    await write(store, b, Buffer.from('b\n'));
    const listed: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'd' })) listed.push(k);
    expect(listed.map((k) => k.runId).sort()).toEqual([a.runId, b.runId]);
    expect(listed.find((k) => k.runId === b.runId)?.mapIndex).toBe(0);
  });

  it('skips streams without a header, such as ones Airflow wrote itself', async () => {
    const store = newStore();
    await write(store, key(), Buffer.from('mine\n'));
    const client = sdkClient();
    const airflows = 'dag_id=d/run_id=other/task_id=t/attempt=1.log';
    await client.send(new CreateLogStreamCommand({ logGroupName: group, logStreamName: airflows }));
    await client.send(
      new PutLogEventsCommand({
        logGroupName: group,
        logStreamName: airflows,
        logEvents: [{ timestamp: Date.now(), message: 'plain Airflow line' }],
      }),
    );
    client.destroy();
    const listed: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'd' })) listed.push(k);
    expect(listed).toEqual([key()]);
  });

  it("refuses a writer whose stream name collides with another attempt's (':' vs '_')", async () => {
    const store = newStore();
    await write(store, key({ runId: 'a:b' }), Buffer.from('first\n'));
    await expect(store.openWriter(key({ runId: 'a_b' }))).rejects.toBeInstanceOf(ConflictError);
    await expect(readAll(store, key({ runId: 'a_b' }))).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("Airflow's CloudwatchTaskHandler", () => {
  it('finds the stream by its own naming and reads every line in order from the head', async () => {
    const store = newStore();
    const content = Buffer.from('[2024-01-01 00:00:00] INFO start\nwork é\n[2024-01-01] done\n');
    await write(store, key(), content);
    // What the handler does: group = the ARN's 7th ':'-field, stream = relative path with ':'
    // replaced by '_', get_log_events(start_from_head=True) until the token repeats.
    const url = arn(group).slice('cloudwatch://'.length);
    const airflowGroup = url.split(':')[6]!;
    const rel = new PathTemplate().render(key()).replaceAll(':', '_');
    const client = sdkClient();
    const res = await client.send(
      new GetLogEventsCommand({
        logGroupName: airflowGroup,
        logStreamName: rel,
        startFromHead: true,
      }),
    );
    client.destroy();
    const text = res
      .events!.map((e) => JSON.parse(e.message!))
      .filter((r) => r.length > 0)
      .map((r) => `${r.text}\n`)
      .join('');
    expect(text).toBe(content.toString());
  });
});

describe('writing through failures', () => {
  it('does not store a batch twice when its answer is lost: it reads the tail first', async () => {
    const store = newStore();
    const writer = await store.openWriter(key());
    emulator.faults.add({
      match: { path: 'PutLogEvents' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await writer.append(Buffer.from('one\ntwo\n'));
    expect(await writer.flush()).toBe(8);
    const messages = emulator.events(group, AIRFLOW_STREAM).map((e) => e.message);
    expect(new Set(messages).size).toBe(messages.length);
    const ops = emulator.requestLog.slice(-2).map((r) => `${r.operation} ${r.status}`);
    expect(ops).toEqual(['PutLogEvents 0', 'GetLogEvents 200']);
  });

  it('resends a batch that failed with a reset before it was stored', async () => {
    const store = newStore();
    const writer = await store.openWriter(key());
    emulator.faults.add({ match: { path: 'PutLogEvents' }, action: { reset: true }, times: 2 });
    await writer.append(Buffer.from('one\n'));
    expect(await writer.flush()).toBe(4);
    await writer.finish({ size: 4, sha256: sha256(Buffer.from('one\n')) });
    expect((await readAll(store, key())).toString()).toBe('one\n');
    expect(emulator.events(group, AIRFLOW_STREAM)).toHaveLength(3);
  });

  it('retries stream creation through ThrottlingException', async () => {
    const store = newStore();
    emulator.faults.add({ match: { path: 'CreateLogStream' }, action: { status: 429 }, times: 3 });
    const writer = await store.openWriter(key());
    expect(writer.committedOffset).toBe(0);
    await writer.abort();
  });

  it('reports events CloudWatch keeps rejecting as too old as BackendUnavailableError naming the clock', async () => {
    const ahead = await startCloudWatchEmulator({ now: () => Date.now() + 15 * 24 * 3600_000 });
    const store = CloudWatchStore.fromUrl(
      arn('/clock'),
      { cloudwatch: { endpoint: ahead.url, max_attempts: 2 } },
      { maxRetryDelayMs: 10 },
    );
    try {
      const err = await store.openWriter(key()).catch((e) => e);
      expect(err).toBeInstanceOf(BackendUnavailableError);
      expect(err.message).toMatch(/14 days old.*clock/);
    } finally {
      await store.close();
      await ahead.close();
    }
  });

  it('throws BackendUnavailableError about credentials for a key CloudWatch does not know', async () => {
    const saved = process.env.AWS_ACCESS_KEY_ID;
    process.env.AWS_ACCESS_KEY_ID = 'AKIDDENIED';
    try {
      const store = newStore();
      const err = await store.ping().catch((e) => e);
      expect(err).toBeInstanceOf(BackendUnavailableError);
      expect(err.message).toMatch(/credentials/);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved;
    }
  });

  it('pings a group that does not exist yet without error (the first write creates it)', async () => {
    await expect(newStore().ping()).resolves.toBeUndefined();
  });
});
