import { BackendUnavailableError, InvalidInputError } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { describe, expect, it } from 'vitest';
import { CloudWatchStore } from '../../../packages/core/src/stores/cloudwatch/store.js';
import { startCloudWatchEmulator } from '../../emulators/cloudwatch/index.js';
import { sha256 } from '../../support/hash.js';
import { writeLog } from '../../support/stores.js';
import * as cw from './store-fixture.js';

// How CloudWatchStore writes: stream names, the events of each line, and writing through faults;
// reading what is there is in store-reading.test.ts.
cw.startEmulatorForThisFile();

/** The escapes among them, parsed. */
function escapes(stream: string): Record<string, unknown>[] {
  return cw
    .messages(stream)
    .filter((m) => m.startsWith('{"tasklog":'))
    .map((m) => JSON.parse(m));
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
    const store = CloudWatchStore.fromUrl(cw.arn('g'), { cloudwatch: { region: 'ap-south-1' } });
    expect(store.region).toBe('ap-south-1');
  });

  it('refuses a URL that is not a log group ARN with InvalidInputError', () => {
    expect(() => CloudWatchStore.fromUrl('cloudwatch://my-group')).toThrow(InvalidInputError);
    expect(() =>
      CloudWatchStore.fromUrl('cloudwatch://arn:aws:logs:us-east-1:1:log-group:bad name'),
    ).toThrow(InvalidInputError);
  });

  it("names the stream like Airflow's CloudwatchTaskHandler: the relative path with ':' as '_'", async () => {
    const store = cw.newStore();
    expect(store.streamName(cw.key())).toBe(cw.AIRFLOW_STREAM);
    await writeLog(store, cw.key(), Buffer.from('hello\n'));
    expect(cw.emulator.streamNames(cw.group)).toEqual([cw.AIRFLOW_STREAM]);
    expect(store.streamName(cw.key({ mapIndex: 3, tryNumber: 2 }))).toBe(
      'dag_id=d/run_id=scheduled__2024-01-01T00_00_00+00_00/task_id=t/map_index=3/attempt=2.log',
    );
  });
});

describe('events', () => {
  it('writes one plain event per line, its message the text, and ends with the size and sha256', async () => {
    const store = cw.newStore();
    const content = Buffer.from('one\ntwo\n');
    await writeLog(store, cw.key(), content);
    expect(cw.messages(cw.AIRFLOW_STREAM)).toEqual([
      'one',
      'two',
      `{"tasklog":{"end":{"size":8,"sha256":"${sha256(content)}"}},"event":"tasklog: end of log, 8 bytes, sha256 ${sha256(content)}"}`,
    ]);
  });

  it('escapes only the lines a plain event cannot carry, and keeps CRLF and blank-looking lines plain', async () => {
    const store = cw.newStore();
    const content = Buffer.concat([
      Buffer.from('first\r\n\n   \n{"tasklog": "mine"}\n'),
      Buffer.from([0xff, 0xfe, 0x41, 0x0a]),
      Buffer.from('no newline at the end'),
    ]);
    await writeLog(store, cw.key(), content);
    expect((await readAll(store, cw.key())).equals(content)).toBe(true);
    const all = cw.messages(cw.AIRFLOW_STREAM);
    expect(all.slice(0, 1)).toEqual(['first\r']);
    expect(all[2]).toBe('   ');
    expect(escapes(cw.AIRFLOW_STREAM)).toEqual([
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
    const store = cw.newStore();
    const line =
      '{"timestamp":"2025-01-01T10:00:00.123456Z","level":"info","event":"hi","logger":"task"}';
    const content = Buffer.from(`${line}\n${line}\n`);
    await writeLog(store, cw.key(), content);
    const [first, second] = cw.messages(cw.AIRFLOW_STREAM);
    expect(JSON.parse(first!)).toEqual({
      tasklog: { offset: 0, length: line.length + 1, text: line },
      timestamp: '2025-01-01T10:00:00.123456Z',
      level: 'info',
      event: 'hi',
      logger: 'task',
    });
    expect(second).toBe(line);
    expect((await readAll(store, cw.key())).equals(content)).toBe(true);
  });

  it('stamps events with non-decreasing timestamps, each batch after everything before it', async () => {
    const store = cw.newStore();
    const writer = await store.openWriter(cw.key());
    for (let i = 0; i < 50; i++) {
      await writer.append(Buffer.from(`line ${i % 3 === 0 ? 'same' : i}\n`));
      if (i % 7 === 0) await writer.flush();
    }
    await writer.abort();
    const events = cw.emulator.events(cw.group, cw.AIRFLOW_STREAM);
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
    const store = cw.newStore();
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
    await writeLog(store, cw.key(), content);
    const stamps = cw.emulator.events(cw.group, cw.AIRFLOW_STREAM).map((e) => e.timestamp);
    expect(stamps.slice(0, 4)).toEqual([hourAgo, hourAgo, hourAgo, hourAgo + 5000]);
    // A line older than CloudWatch takes is stamped no earlier than the one before it.
    expect(stamps[4]).toBe(hourAgo + 5000);
  });

  it('writes a line up to the event limit as one plain event, and a longer one as escaped pieces joined on read', async () => {
    const store = cw.newStore({ maxPieceBytes: 64 * 1024 });
    const fits = 'x'.repeat(64 * 1024);
    const long = Buffer.concat([Buffer.alloc(150 * 1024, 'y'), Buffer.from('\n')]);
    const content = Buffer.concat([Buffer.from(`${fits}\n`), long]);
    await writeLog(store, cw.key(), content);
    const all = cw.messages(cw.AIRFLOW_STREAM);
    expect(all[0]).toBe(fits);
    for (const m of all) expect(Buffer.byteLength(m)).toBeLessThanOrEqual(64 * 1024);
    expect(all.length).toBeGreaterThanOrEqual(1 + 3 + 1);
    expect((await readAll(store, cw.key())).equals(content)).toBe(true);
  });

  it('stays within the event limit for a line of control characters, which JSON escapes 6-fold in a piece', async () => {
    const store = cw.newStore({ maxPieceBytes: 64 * 1024 });
    const line = Buffer.concat([Buffer.alloc(300 * 1024, 0x01), Buffer.from('\n')]);
    await writeLog(store, cw.key(), line);
    for (const e of cw.emulator.events(cw.group, cw.AIRFLOW_STREAM)) {
      expect(e.bytes).toBeLessThanOrEqual(64 * 1024);
    }
    expect((await readAll(store, cw.key())).equals(line)).toBe(true);
  });

  it('ships 25,000 lines in PutLogEvents batches of at most 10,000 events', async () => {
    const store = cw.newStore();
    const content = Buffer.from(Array.from({ length: 25_000 }, (_, i) => `line ${i}\n`).join(''));
    const before = cw.emulator.requestLog.length;
    await writeLog(store, cw.key(), content);
    const puts = cw.emulator.requestLog.slice(before).filter((r) => r.operation === 'PutLogEvents');
    // 3 batches of lines, the end record
    expect(puts).toHaveLength(4);
    expect(puts.every((r) => r.status === 200)).toBe(true);
    expect(sha256(await readAll(store, cw.key()))).toBe(sha256(content));
  });

  it('keeps batches within the byte limit, counting 26 bytes per event', async () => {
    const store = cw.newStore({ maxBatchBytes: 300_000, maxPieceBytes: 64 * 1024 });
    const content = Buffer.from(
      Array.from({ length: 3_000 }, (_, i) => `${'y'.repeat(200)} ${i}\n`).join(''),
    );
    const before = cw.emulator.requestLog.length;
    await writeLog(store, cw.key(), content);
    const puts = cw.emulator.requestLog.slice(before).filter((r) => r.operation === 'PutLogEvents');
    expect(puts.length).toBeGreaterThan(3);
    expect(puts.every((r) => r.status === 200)).toBe(true);
    expect((await readAll(store, cw.key())).equals(content)).toBe(true);
  });
});

describe('writing through failures', () => {
  it('does not store a batch twice when its answer is lost: it reads the newest event first', async () => {
    const store = cw.newStore();
    const writer = await store.openWriter(cw.key());
    cw.emulator.faults.add({
      match: { path: 'PutLogEvents' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    await writer.append(Buffer.from('one\ntwo\n'));
    expect(await writer.flush()).toBe(8);
    expect(cw.messages(cw.AIRFLOW_STREAM)).toEqual(['one', 'two']);
    const ops = cw.emulator.requestLog.slice(-2).map((r) => `${r.operation} ${r.status}`);
    expect(ops).toEqual(['PutLogEvents 0', 'GetLogEvents 200']);
  });

  it('settles a batch whose retries ran out before it sends anything else', async () => {
    const store = cw.newStore({ maxAttempts: 2 });
    const writer = await store.openWriter(cw.key());
    cw.emulator.faults.add({
      match: { path: 'PutLogEvents' },
      action: { reset: true, resetAfterCommit: true },
      times: 1,
    });
    cw.emulator.faults.add({ match: { path: 'GetLogEvents' }, action: { status: 503 }, times: 20 });
    await writer.append(Buffer.from('one\ntwo\n'));
    await expect(writer.flush()).rejects.toBeInstanceOf(BackendUnavailableError);
    cw.emulator.faults.clear();
    await writer.append(Buffer.from('three\n'));
    expect(await writer.flush()).toBe(14);
    expect(cw.messages(cw.AIRFLOW_STREAM)).toEqual(['one', 'two', 'three']);
  });

  it('resends a batch that failed with a reset before it was stored', async () => {
    const store = cw.newStore();
    const writer = await store.openWriter(cw.key());
    cw.emulator.faults.add({ match: { path: 'PutLogEvents' }, action: { reset: true }, times: 2 });
    await writer.append(Buffer.from('one\n'));
    expect(await writer.flush()).toBe(4);
    await writer.finish({ size: 4, sha256: sha256(Buffer.from('one\n')) });
    expect((await readAll(store, cw.key())).toString()).toBe('one\n');
    expect(cw.emulator.events(cw.group, cw.AIRFLOW_STREAM)).toHaveLength(2);
  });

  it('retries stream creation through ThrottlingException', async () => {
    const store = cw.newStore();
    cw.emulator.faults.add({
      match: { path: 'CreateLogStream' },
      action: { status: 429 },
      times: 3,
    });
    const writer = await store.openWriter(cw.key());
    expect(writer.committedOffset).toBe(0);
    await writer.abort();
  });

  it('reports events CloudWatch keeps rejecting as too old as BackendUnavailableError naming the clock', async () => {
    const ahead = await startCloudWatchEmulator({ now: () => Date.now() + 15 * 24 * 3600_000 });
    const store = CloudWatchStore.fromUrl(
      cw.arn('/clock'),
      { cloudwatch: { endpoint: ahead.url, max_attempts: 2 } },
      { maxRetryDelayMs: 10 },
    );
    try {
      const writer = await store.openWriter(cw.key());
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
      const store = cw.newStore();
      const err = await store.ping().catch((e) => e);
      expect(err).toBeInstanceOf(BackendUnavailableError);
      expect(err.message).toMatch(/credentials/);
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved;
    }
  });

  it('pings a group that does not exist yet without error (the first write creates it)', async () => {
    await expect(cw.newStore().ping()).resolves.toBeUndefined();
  });
});
