import {
  CloudWatchLogsClient,
  CreateLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import {
  AbortedError,
  type AttemptKey,
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  InvalidInputError,
  type LogStore,
  NotFoundError,
} from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CloudWatchStore,
  type CloudWatchStoreOptions,
} from '../../../packages/core/src/stores/cloudwatch/store.js';
import {
  type CloudWatchEmulator,
  startCloudWatchEmulator,
} from '../../emulators/cloudwatch/index.js';
import { attemptKeys } from '../../support/attempts.js';
import { sha256 } from '../../support/hash.js';
import { writeLog } from '../../support/stores.js';

process.env.AWS_ACCESS_KEY_ID ??= 'AKIDTASKLOGTEST';
process.env.AWS_SECRET_ACCESS_KEY ??= 'tasklog-test-secret';

const RUN_ID = 'scheduled__2024-01-01T00:00:00+00:00';
const AIRFLOW_STREAM =
  'dag_id=d/run_id=scheduled__2024-01-01T00_00_00+00_00/task_id=t/attempt=1.log';

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

const key = attemptKeys({ dagId: 'd', runId: RUN_ID, taskId: 't' });

/** The raw events' messages, in stream order. */
function messages(stream: string): string[] {
  return emulator.events(group, stream).map((e) => e.message);
}

/** The escapes among them, parsed. */
function escapes(stream: string): Record<string, unknown>[] {
  return messages(stream)
    .filter((m) => m.startsWith('{"tasklog":'))
    .map((m) => JSON.parse(m));
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
    await writeLog(store, key(), Buffer.from('hello\n'));
    expect(emulator.streamNames(group)).toEqual([AIRFLOW_STREAM]);
    expect(store.streamName(key({ mapIndex: 3, tryNumber: 2 }))).toBe(
      'dag_id=d/run_id=scheduled__2024-01-01T00_00_00+00_00/task_id=t/map_index=3/attempt=2.log',
    );
  });
});

describe('events', () => {
  it('writes one plain event per line, its message the text, and ends with the size and sha256', async () => {
    const store = newStore();
    const content = Buffer.from('one\ntwo\n');
    await writeLog(store, key(), content);
    expect(messages(AIRFLOW_STREAM)).toEqual([
      'one',
      'two',
      `{"tasklog":{"end":{"size":8,"sha256":"${sha256(content)}"}},"event":"tasklog: end of log, 8 bytes, sha256 ${sha256(content)}"}`,
    ]);
  });

  it('escapes only the lines a plain event cannot carry, and keeps CRLF and blank-looking lines plain', async () => {
    const store = newStore();
    const content = Buffer.concat([
      Buffer.from('first\r\n\n   \n{"tasklog": "mine"}\n'),
      Buffer.from([0xff, 0xfe, 0x41, 0x0a]),
      Buffer.from('no newline at the end'),
    ]);
    await writeLog(store, key(), content);
    expect((await readAll(store, key())).equals(content)).toBe(true);
    const all = messages(AIRFLOW_STREAM);
    expect(all.slice(0, 1)).toEqual(['first\r']);
    expect(all[2]).toBe('   ');
    expect(escapes(AIRFLOW_STREAM)).toEqual([
      { tasklog: { offset: 7, length: 1 }, event: '' },
      { tasklog: { offset: 12, length: 20 }, event: '{"tasklog": "mine"}' },
      {
        tasklog: {
          offset: 32,
          length: 4,
          base64: Buffer.from([0xff, 0xfe, 0x41]).toString('base64'),
        },
        event: '\ufffd\ufffdA',
      },
      { tasklog: { offset: 36, length: 21 }, event: 'no newline at the end' },
      expect.objectContaining({ tasklog: { end: { size: 57, sha256: sha256(content) } } }),
    ]);
  });

  it('escapes a first line that is a JSON object, spreading its fields so Airflow 3 shows it as it shows the line', async () => {
    const store = newStore();
    const line =
      '{"timestamp":"2025-01-01T10:00:00.123456Z","level":"info","event":"hi","logger":"task"}';
    const content = Buffer.from(`${line}\n${line}\n`);
    await writeLog(store, key(), content);
    const [first, second] = messages(AIRFLOW_STREAM);
    expect(JSON.parse(first!)).toEqual({
      tasklog: { offset: 0, length: line.length + 1, text: line },
      timestamp: '2025-01-01T10:00:00.123456Z',
      level: 'info',
      event: 'hi',
      logger: 'task',
    });
    expect(second).toBe(line);
    expect((await readAll(store, key())).equals(content)).toBe(true);
  });

  it('stamps events with non-decreasing timestamps, each batch after everything before it', async () => {
    const store = newStore();
    const writer = await store.openWriter(key());
    for (let i = 0; i < 50; i++) {
      await writer.append(Buffer.from(`line ${i % 3 === 0 ? 'same' : i}\n`));
      if (i % 7 === 0) await writer.flush();
    }
    await writer.abort();
    const events = emulator.events(group, AIRFLOW_STREAM);
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.timestamp).toBeGreaterThanOrEqual(events[i - 1]!.timestamp);
      // Airflow 3 drops a record equal to the one before it, time included.
      if (events[i]!.message === events[i - 1]!.message) {
        expect(events[i]!.timestamp).toBeGreaterThan(events[i - 1]!.timestamp);
      }
    }
    expect(events.map((e) => e.message)).toEqual(
      Array.from({ length: 50 }, (_, i) => `line ${i % 3 === 0 ? 'same' : i}`),
    );
  });

  it("stamps an event with the time its line says it was written, inside CloudWatch's 14 days", async () => {
    const store = newStore();
    const hourAgo = Date.now() - 3600_000;
    const t = (ms: number) => new Date(ms).toISOString();
    const content = Buffer.from(
      [
        'before any time',
        `[${t(hourAgo)}] airflow 2 style`,
        'a traceback line',
        `{"timestamp":"${t(hourAgo + 5000)}","level":"info","event":"airflow 3 style"}`,
        `[${t(Date.now() - 30 * 24 * 3600_000)}] a month old`,
        '',
      ].join('\n'),
    );
    await writeLog(store, key(), content);
    const stamps = emulator.events(group, AIRFLOW_STREAM).map((e) => e.timestamp);
    expect(stamps.slice(0, 4)).toEqual([hourAgo, hourAgo, hourAgo, hourAgo + 5000]);
    // A line older than CloudWatch takes is stamped no earlier than the one before it.
    expect(stamps[4]).toBe(hourAgo + 5000);
  });

  it('writes a line up to the event limit as one plain event, and a longer one as escaped pieces joined on read', async () => {
    const store = newStore({ maxPieceBytes: 64 * 1024 });
    const fits = 'x'.repeat(64 * 1024);
    const long = Buffer.concat([Buffer.alloc(150 * 1024, 'y'), Buffer.from('\n')]);
    const content = Buffer.concat([Buffer.from(`${fits}\n`), long]);
    await writeLog(store, key(), content);
    const all = messages(AIRFLOW_STREAM);
    expect(all[0]).toBe(fits);
    for (const m of all) expect(Buffer.byteLength(m)).toBeLessThanOrEqual(64 * 1024);
    expect(all.length).toBeGreaterThanOrEqual(1 + 3 + 1);
    expect((await readAll(store, key())).equals(content)).toBe(true);
  });

  it('stays within the event limit for a line of control characters, which JSON escapes 6-fold in a piece', async () => {
    const store = newStore({ maxPieceBytes: 64 * 1024 });
    const line = Buffer.concat([Buffer.alloc(300 * 1024, 0x01), Buffer.from('\n')]);
    await writeLog(store, key(), line);
    for (const e of emulator.events(group, AIRFLOW_STREAM)) {
      expect(e.bytes).toBeLessThanOrEqual(64 * 1024);
    }
    expect((await readAll(store, key())).equals(line)).toBe(true);
  });

  it('ships 25,000 lines in PutLogEvents batches of at most 10,000 events', async () => {
    const store = newStore();
    const content = Buffer.from(Array.from({ length: 25_000 }, (_, i) => `line ${i}\n`).join(''));
    const before = emulator.requestLog.length;
    await writeLog(store, key(), content);
    const puts = emulator.requestLog.slice(before).filter((r) => r.operation === 'PutLogEvents');
    // 3 batches of lines, the end record
    expect(puts).toHaveLength(4);
    expect(puts.every((r) => r.status === 200)).toBe(true);
    expect(sha256(await readAll(store, key()))).toBe(sha256(content));
  });

  it('keeps batches within the byte limit, counting 26 bytes per event', async () => {
    const store = newStore({ maxBatchBytes: 300_000, maxPieceBytes: 64 * 1024 });
    const content = Buffer.from(
      Array.from({ length: 3_000 }, (_, i) => `${'y'.repeat(200)} ${i}\n`).join(''),
    );
    const before = emulator.requestLog.length;
    await writeLog(store, key(), content);
    const puts = emulator.requestLog.slice(before).filter((r) => r.operation === 'PutLogEvents');
    expect(puts.length).toBeGreaterThan(3);
    expect(puts.every((r) => r.status === 200)).toBe(true);
    expect((await readAll(store, key())).equals(content)).toBe(true);
  });
});

/** Puts `messages` into the test's stream as one batch (creating group and stream). */
async function putMessages(stream: string, list: string[], timestamp = Date.now()): Promise<void> {
  const client = sdkClient();
  emulator.createLogGroup(group);
  await client
    .send(new CreateLogStreamCommand({ logGroupName: group, logStreamName: stream }))
    .catch(() => undefined);
  for (let i = 0; i < list.length; i += 5_000) {
    await client.send(
      new PutLogEventsCommand({
        logGroupName: group,
        logStreamName: stream,
        logEvents: list.slice(i, i + 5_000).map((message) => ({ timestamp, message })),
      }),
    );
  }
  client.destroy();
}

/** `content` as tasklog wrote it before today's layout: a header, one envelope per line, the end. */
function envelopes(k: AttemptKey, content: Buffer, finished = true): string[] {
  const out = [JSON.stringify({ offset: 0, length: 0, key: { ...k } })];
  let start = 0;
  for (let nl = content.indexOf(0x0a); nl >= 0; nl = content.indexOf(0x0a, start)) {
    const text = content.subarray(start, nl).toString('utf8');
    out.push(JSON.stringify({ offset: start, length: nl + 1 - start, text }));
    start = nl + 1;
  }
  if (start < content.length) {
    const text = content.subarray(start).toString('utf8');
    out.push(JSON.stringify({ offset: start, length: content.length - start, text }));
  }
  if (finished) {
    out.push(
      JSON.stringify({ offset: content.length, length: 0, end: true, sha256: sha256(content) }),
    );
  }
  return out;
}

describe('reading', () => {
  it("reads from any offset of a stream in today's layout by counting from its head", async () => {
    const store = newStore();
    const content = Buffer.from('\nalpha\nbé\n\ngamma\nlast');
    await writeLog(store, key(), content);
    for (let offset = 0; offset <= content.length; offset++) {
      expect((await readAll(store, key(), { offset })).equals(content.subarray(offset))).toBe(true);
    }
  });

  it('finds the size of a running log back from its end to the nearest escape, or the head', async () => {
    const store = newStore();
    const writer = await store.openWriter(key());
    await writer.append(Buffer.from('one\n\ntwo\nthree\n'));
    await writer.flush();
    expect(await store.stat(key())).toMatchObject({ size: 15, complete: false });
    await writer.append(Buffer.from('four, not ended'));
    await writer.flush();
    expect(await store.stat(key())).toMatchObject({ size: 30, complete: false });
    await writer.abort();
    const plainOnly = key({ taskId: 'plain' });
    const other = await store.openWriter(plainOnly);
    await other.append(Buffer.from('a\nbb\n'));
    await other.flush();
    expect(await store.stat(plainOnly)).toMatchObject({ size: 5, complete: false });
    await other.abort();
  });

  it('throws IntegrityError for a finished log whose escapes and plain lines do not meet', async () => {
    const store = newStore();
    await putMessages(AIRFLOW_STREAM, [
      'one',
      JSON.stringify({ tasklog: { offset: 8, length: 1 }, event: '' }),
      JSON.stringify({ tasklog: { end: { size: 9, sha256: '0'.repeat(64) } }, event: 'end' }),
    ]);
    await expect(readAll(store, key())).rejects.toBeInstanceOf(IntegrityError);
  });

  it('throws NotFoundError when the log group does not exist', async () => {
    const store = newStore();
    await expect(readAll(store, key())).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.stat(key())).toBeUndefined();
  });

  it('throws AbortedError when the read is aborted', async () => {
    const store = newStore();
    await writeLog(store, key(), Buffer.from('a\nb\n'));
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

describe('streams in the earlier envelope layout (one JSON record per event)', () => {
  it('reads a finished one byte for byte, with its size and sha256', async () => {
    const store = newStore();
    const content = Buffer.from('one\n\ntwo é\nlast');
    await putMessages(AIRFLOW_STREAM, envelopes(key(), content));
    expect((await readAll(store, key())).equals(content)).toBe(true);
    expect(await store.stat(key())).toEqual(
      expect.objectContaining({ size: content.length, complete: true, sha256: sha256(content) }),
    );
    const listed: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'd' })) listed.push(k);
    expect(listed).toEqual([key()]);
  });

  it('resumes a running one in the same layout and finishes it', async () => {
    const store = newStore();
    const content = Buffer.from('first\nsecond\nthird\n');
    await putMessages(AIRFLOW_STREAM, envelopes(key(), content.subarray(0, 13), false));
    const writer = await store.openWriter(key());
    expect(writer.committedOffset).toBe(13);
    await writer.append(content.subarray(13));
    await writer.finish({ size: content.length, sha256: sha256(content) });
    const added = messages(AIRFLOW_STREAM)
      .slice(3)
      .map((m) => JSON.parse(m));
    expect(added).toEqual([
      { offset: 13, length: 6, text: 'third' },
      { offset: 19, length: 0, end: true, sha256: sha256(content) },
    ]);
    expect((await readAll(store, key())).equals(content)).toBe(true);
  });

  it('reads from a large offset with FilterLogEvents `{ $.offset >= N }` instead of from the head', async () => {
    const store = newStore({ filterFromOffset: 2 * 1024 * 1024 });
    const content = Buffer.from(
      Array.from({ length: 40_000 }, (_, i) => `${i} ${'z'.repeat(70)}\n`).join(''),
    );
    await putMessages(AIRFLOW_STREAM, envelopes(key(), content));
    const before = emulator.requestLog.length;
    const offset = Math.floor(content.length * 0.9) + 3;
    expect((await readAll(store, key(), { offset })).equals(content.subarray(offset))).toBe(true);
    const ops = emulator.requestLog.slice(before).map((r) => r.operation);
    // One GetLogEvents for the stream's first event (its layout), the rest filtered.
    expect(ops.filter((o) => o === 'GetLogEvents')).toHaveLength(1);
    expect(new Set(ops)).toEqual(new Set(['GetLogEvents', 'FilterLogEvents']));
    await expect(readAll(store, key(), { offset: content.length + 1 })).rejects.toMatchObject({
      name: 'OffsetOutOfRangeError',
      size: content.length,
    });
  });

  it('returns each byte once when the stream holds duplicated and reordered records', async () => {
    const store = newStore();
    const list = [
      { offset: 0, length: 0, key: { ...key() } },
      { offset: 4, length: 4, text: 'two' },
      { offset: 0, length: 4, text: 'one' },
      { offset: 4, length: 4, text: 'two' },
      { offset: 0, length: 4, text: 'one' },
      { offset: 8, length: 6, text: 'three' },
    ];
    await putMessages(
      AIRFLOW_STREAM,
      list.map((m) => JSON.stringify(m)),
    );
    expect((await readAll(store, key())).toString()).toBe('one\ntwo\nthree\n');
    expect(await store.stat(key())).toMatchObject({ size: 14, complete: false });
  });

  it('throws IntegrityError for a complete log with a gap', async () => {
    const store = newStore();
    const list = [
      { offset: 0, length: 0, key: { ...key() } },
      { offset: 0, length: 4, text: 'one' },
      { offset: 8, length: 6, text: 'three' },
      { offset: 14, length: 0, end: true, sha256: '0'.repeat(64) },
    ];
    await putMessages(
      AIRFLOW_STREAM,
      list.map((m) => JSON.stringify(m)),
    );
    await expect(readAll(store, key())).rejects.toBeInstanceOf(IntegrityError);
  });
});

describe('listing and name collisions', () => {
  it("lists attempts with ':' in their run id intact, without a header where the name gives it back", async () => {
    const store = newStore();
    const a = key({ runId: 'manual__2024-05-01T10:00:00+00:00' });
    const b = key({ runId: 'manual__2024-05-01T11:00:00.123456+00:00', mapIndex: 0 });
    const c = key({ runId: 'my:run', taskId: 'other' });
    await writeLog(store, a, Buffer.from('a\n'));
    await writeLog(store, b, Buffer.from('b\n'));
    await writeLog(store, c, Buffer.from('c\n'));
    const listed: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'd' })) listed.push(k);
    expect(listed.map((k) => k.runId).sort()).toEqual([a.runId, b.runId, c.runId].sort());
    expect(listed.find((k) => k.runId === b.runId)?.mapIndex).toBe(0);
    expect(messages(store.streamName(a))[0]).toBe('a');
    expect(JSON.parse(messages(store.streamName(c))[0]!)).toEqual({
      tasklog: { key: { ...c } },
      event: 'tasklog: log of dag_id=d run_id=my:run task_id=other try_number=1',
    });
  });

  it('lists streams Airflow wrote itself by their name, with the run id the caller asked for', async () => {
    const store = newStore();
    await writeLog(store, key(), Buffer.from('mine\n'));
    await putMessages('dag_id=d/run_id=custom_run/task_id=t/attempt=2.log', ['plain Airflow line']);
    const all: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'd' })) all.push(k);
    expect(all).toEqual([key({ runId: 'custom_run', tryNumber: 2 }), key()]);
    const asked: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'd', runId: 'custom:run', taskId: 't' }))
      asked.push(k);
    expect(asked).toEqual([key({ runId: 'custom:run', tryNumber: 2 })]);
    expect((await readAll(store, key({ runId: 'custom:run', tryNumber: 2 }))).toString()).toBe(
      'plain Airflow line\n',
    );
  });

  it("refuses a writer whose stream name collides with another attempt's (':' vs '_'), both ways", async () => {
    const store = newStore();
    await writeLog(store, key({ runId: 'a:b' }), Buffer.from('first\n'));
    await expect(store.openWriter(key({ runId: 'a_b' }))).rejects.toBeInstanceOf(ConflictError);
    await expect(readAll(store, key({ runId: 'a_b' }))).rejects.toBeInstanceOf(NotFoundError);
    await writeLog(store, key({ runId: 'c_d' }), Buffer.from('second\n'));
    await expect(store.openWriter(key({ runId: 'c:d' }))).rejects.toBeInstanceOf(ConflictError);
  });
});

describe('writing through failures', () => {
  it('does not store a batch twice when its answer is lost: it reads the newest event first', async () => {
    const store = newStore();
    const writer = await store.openWriter(key());
    emulator.faults.add({
      match: { path: 'PutLogEvents' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await writer.append(Buffer.from('one\ntwo\n'));
    expect(await writer.flush()).toBe(8);
    expect(messages(AIRFLOW_STREAM)).toEqual(['one', 'two']);
    const ops = emulator.requestLog.slice(-2).map((r) => `${r.operation} ${r.status}`);
    expect(ops).toEqual(['PutLogEvents 0', 'GetLogEvents 200']);
  });

  it('settles a batch whose retries ran out before it sends anything else', async () => {
    const store = newStore({ maxAttempts: 2 });
    const writer = await store.openWriter(key());
    emulator.faults.add({
      match: { path: 'PutLogEvents' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    emulator.faults.add({ match: { path: 'GetLogEvents' }, action: { status: 503 }, times: 20 });
    await writer.append(Buffer.from('one\ntwo\n'));
    await expect(writer.flush()).rejects.toBeInstanceOf(BackendUnavailableError);
    emulator.faults.clear();
    await writer.append(Buffer.from('three\n'));
    expect(await writer.flush()).toBe(14);
    expect(messages(AIRFLOW_STREAM)).toEqual(['one', 'two', 'three']);
  });

  it('resends a batch that failed with a reset before it was stored', async () => {
    const store = newStore();
    const writer = await store.openWriter(key());
    emulator.faults.add({ match: { path: 'PutLogEvents' }, action: { reset: true }, times: 2 });
    await writer.append(Buffer.from('one\n'));
    expect(await writer.flush()).toBe(4);
    await writer.finish({ size: 4, sha256: sha256(Buffer.from('one\n')) });
    expect((await readAll(store, key())).toString()).toBe('one\n');
    expect(emulator.events(group, AIRFLOW_STREAM)).toHaveLength(2);
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
      const writer = await store.openWriter(key());
      await writer.append(Buffer.from('one\n'));
      const err = await writer.flush().catch((e) => e);
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
