import {
  CloudWatchLogsClient,
  CreateLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import {
  AbortedError,
  type AttemptKey,
  ConflictError,
  IntegrityError,
  NotFoundError,
} from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../support/hash.js';
import { writeLog } from '../../support/stores.js';
import * as cw from './store-fixture.js';

// How CloudWatchStore reads: today's layout, the earlier envelope layout, and listing; what it
// writes is in store-writing.test.ts.
cw.startEmulatorForThisFile();

function sdkClient() {
  return new CloudWatchLogsClient({
    region: 'us-east-1',
    endpoint: cw.emulator.url,
    maxAttempts: 1,
  });
}

/** Puts `messages` into the test's stream as one batch (creating group and stream). */
async function putMessages(stream: string, list: string[], timestamp = Date.now()): Promise<void> {
  const client = sdkClient();
  cw.emulator.createLogGroup(cw.group);
  await client
    .send(new CreateLogStreamCommand({ logGroupName: cw.group, logStreamName: stream }))
    .catch(() => undefined);
  for (let i = 0; i < list.length; i += 5_000) {
    await client.send(
      new PutLogEventsCommand({
        logGroupName: cw.group,
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

/** Puts `records` of the envelope layout into the test's stream, after the header of `cw.key()`. */
async function putEnvelopeRecords(records: object[]): Promise<void> {
  const header = { offset: 0, length: 0, key: { ...cw.key() } };
  await putMessages(
    cw.AIRFLOW_STREAM,
    [header, ...records].map((m) => JSON.stringify(m)),
  );
}

describe('reading', () => {
  it("reads from any offset of a stream in today's layout by counting from its head", async () => {
    const store = cw.newStore();
    const content = Buffer.from('\nalpha\nbé\n\ngamma\nlast');
    await writeLog(store, cw.key(), content);
    for (let offset = 0; offset <= content.length; offset++) {
      expect((await readAll(store, cw.key(), { offset })).equals(content.subarray(offset))).toBe(
        true,
      );
    }
  });

  it('finds the size of a running log back from its end to the nearest escape, or the head', async () => {
    const store = cw.newStore();
    const writer = await store.openWriter(cw.key());
    await writer.append(Buffer.from('one\n\ntwo\nthree\n'));
    await writer.flush();
    expect(await store.stat(cw.key())).toMatchObject({ size: 15, complete: false });
    await writer.append(Buffer.from('four, not ended'));
    await writer.flush();
    expect(await store.stat(cw.key())).toMatchObject({ size: 30, complete: false });
    await writer.abort();
    const plainOnly = cw.key({ taskId: 'plain' });
    const other = await store.openWriter(plainOnly);
    await other.append(Buffer.from('a\nbb\n'));
    await other.flush();
    expect(await store.stat(plainOnly)).toMatchObject({ size: 5, complete: false });
    await other.abort();
  });

  it('throws IntegrityError for a finished log whose escapes and plain lines do not meet', async () => {
    const store = cw.newStore();
    await putMessages(cw.AIRFLOW_STREAM, [
      'one',
      JSON.stringify({ tasklog: { offset: 8, length: 1 }, event: '' }),
      JSON.stringify({ tasklog: { end: { size: 9, sha256: '0'.repeat(64) } }, event: 'end' }),
    ]);
    await expect(readAll(store, cw.key())).rejects.toBeInstanceOf(IntegrityError);
  });

  it('throws NotFoundError when the log group does not exist', async () => {
    const store = cw.newStore();
    await expect(readAll(store, cw.key())).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.stat(cw.key())).toBeUndefined();
  });

  it('throws AbortedError when the read is aborted', async () => {
    const store = cw.newStore();
    await writeLog(store, cw.key(), Buffer.from('a\nb\n'));
    const controller = new AbortController();
    controller.abort();
    await expect(
      (async () => {
        for await (const _ of store.read(cw.key(), { signal: controller.signal })) {
          // nothing
        }
      })(),
    ).rejects.toBeInstanceOf(AbortedError);
  });
});

describe('streams in the earlier envelope layout (one JSON record per event)', () => {
  it('reads a finished one byte for byte, with its size and sha256', async () => {
    const store = cw.newStore();
    const content = Buffer.from('one\n\ntwo é\nlast');
    await putMessages(cw.AIRFLOW_STREAM, envelopes(cw.key(), content));
    expect((await readAll(store, cw.key())).equals(content)).toBe(true);
    expect(await store.stat(cw.key())).toEqual(
      expect.objectContaining({ size: content.length, complete: true, sha256: sha256(content) }),
    );
    const listed: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'd' })) listed.push(k);
    expect(listed).toEqual([cw.key()]);
  });

  it('resumes a running one in the same layout and finishes it', async () => {
    const store = cw.newStore();
    const content = Buffer.from('first\nsecond\nthird\n');
    await putMessages(cw.AIRFLOW_STREAM, envelopes(cw.key(), content.subarray(0, 13), false));
    const writer = await store.openWriter(cw.key());
    expect(writer.committedOffset).toBe(13);
    await writer.append(content.subarray(13));
    await writer.finish({ size: content.length, sha256: sha256(content) });
    const added = cw
      .messages(cw.AIRFLOW_STREAM)
      .slice(3)
      .map((m) => JSON.parse(m));
    expect(added).toEqual([
      { offset: 13, length: 6, text: 'third' },
      { offset: 19, length: 0, end: true, sha256: sha256(content) },
    ]);
    expect((await readAll(store, cw.key())).equals(content)).toBe(true);
  });

  it('reads from a large offset with FilterLogEvents `{ $.offset >= N }` instead of from the head', async () => {
    const store = cw.newStore({ filterFromOffset: 2 * 1024 * 1024 });
    const content = Buffer.from(
      Array.from({ length: 40_000 }, (_, i) => `${i} ${'z'.repeat(70)}\n`).join(''),
    );
    await putMessages(cw.AIRFLOW_STREAM, envelopes(cw.key(), content));
    const before = cw.emulator.requestLog.length;
    const offset = Math.floor(content.length * 0.9) + 3;
    expect((await readAll(store, cw.key(), { offset })).equals(content.subarray(offset))).toBe(
      true,
    );
    const ops = cw.emulator.requestLog.slice(before).map((r) => r.operation);
    // One GetLogEvents for the stream's first event (its layout), the rest filtered.
    expect(ops.filter((o) => o === 'GetLogEvents')).toHaveLength(1);
    expect(new Set(ops)).toEqual(new Set(['GetLogEvents', 'FilterLogEvents']));
    await expect(readAll(store, cw.key(), { offset: content.length + 1 })).rejects.toMatchObject({
      name: 'OffsetOutOfRangeError',
      size: content.length,
    });
  });

  it('returns each byte once when the stream holds duplicated and reordered records', async () => {
    const store = cw.newStore();
    await putEnvelopeRecords([
      { offset: 4, length: 4, text: 'two' },
      { offset: 0, length: 4, text: 'one' },
      { offset: 4, length: 4, text: 'two' },
      { offset: 0, length: 4, text: 'one' },
      { offset: 8, length: 6, text: 'three' },
    ]);
    expect((await readAll(store, cw.key())).toString()).toBe('one\ntwo\nthree\n');
    expect(await store.stat(cw.key())).toMatchObject({ size: 14, complete: false });
  });

  it('throws IntegrityError for a complete log with a gap', async () => {
    const store = cw.newStore();
    await putEnvelopeRecords([
      { offset: 0, length: 4, text: 'one' },
      { offset: 8, length: 6, text: 'three' },
      { offset: 14, length: 0, end: true, sha256: '0'.repeat(64) },
    ]);
    await expect(readAll(store, cw.key())).rejects.toBeInstanceOf(IntegrityError);
  });
});

describe('listing and name collisions', () => {
  it("lists attempts with ':' in their run id intact, without a header where the name gives it back", async () => {
    const store = cw.newStore();
    const a = cw.key({ runId: 'manual__2024-05-01T10:00:00+00:00' });
    const b = cw.key({ runId: 'manual__2024-05-01T11:00:00.123456+00:00', mapIndex: 0 });
    const c = cw.key({ runId: 'my:run', taskId: 'other' });
    await writeLog(store, a, Buffer.from('a\n'));
    await writeLog(store, b, Buffer.from('b\n'));
    await writeLog(store, c, Buffer.from('c\n'));
    const listed: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'd' })) listed.push(k);
    expect(listed.map((k) => k.runId).sort()).toEqual([a.runId, b.runId, c.runId].sort());
    expect(listed.find((k) => k.runId === b.runId)?.mapIndex).toBe(0);
    expect(cw.messages(store.streamName(a))[0]).toBe('a');
    expect(JSON.parse(cw.messages(store.streamName(c))[0]!)).toEqual({
      tasklog: { key: { ...c } },
      event: 'tasklog: log of dag_id=d run_id=my:run task_id=other try_number=1',
    });
  });

  it('lists streams Airflow wrote itself by their name, with the run id the caller asked for', async () => {
    const store = cw.newStore();
    await writeLog(store, cw.key(), Buffer.from('mine\n'));
    await putMessages('dag_id=d/run_id=custom_run/task_id=t/attempt=2.log', ['plain Airflow line']);
    const all: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'd' })) all.push(k);
    expect(all).toEqual([cw.key({ runId: 'custom_run', tryNumber: 2 }), cw.key()]);
    const asked: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'd', runId: 'custom:run', taskId: 't' }))
      asked.push(k);
    expect(asked).toEqual([cw.key({ runId: 'custom:run', tryNumber: 2 })]);
    expect((await readAll(store, cw.key({ runId: 'custom:run', tryNumber: 2 }))).toString()).toBe(
      'plain Airflow line\n',
    );
  });

  it("refuses a writer whose stream name collides with another attempt's (':' vs '_'), both ways", async () => {
    const store = cw.newStore();
    await writeLog(store, cw.key({ runId: 'a:b' }), Buffer.from('first\n'));
    await expect(store.openWriter(cw.key({ runId: 'a_b' }))).rejects.toBeInstanceOf(ConflictError);
    await expect(readAll(store, cw.key({ runId: 'a_b' }))).rejects.toBeInstanceOf(NotFoundError);
    await writeLog(store, cw.key({ runId: 'c_d' }), Buffer.from('second\n'));
    await expect(store.openWriter(cw.key({ runId: 'c:d' }))).rejects.toBeInstanceOf(ConflictError);
  });
});
