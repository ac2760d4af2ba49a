import { readFileSync } from 'node:fs';
import {
  CloudWatchLogsClient,
  CreateLogStreamCommand,
  PutLogEventsCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { type AttemptKey, attemptKey, type LogWriter } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudWatchStore } from '../../packages/core/src/stores/cloudwatch/store.js';
import { type CloudWatchEmulator, startCloudWatchEmulator } from '../emulators/cloudwatch/index.js';
import { runCli } from '../support/cli.js';
import { cloudWatchStoreOn, cloudWatchUrl } from '../support/cloudwatch.js';
import { sha256 } from '../support/hash.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import {
  airflow2Lines,
  airflow2View,
  airflow3Records,
  airflowLogEvents,
  type CloudWatchLogEvent,
} from './cloudwatch-airflow-readers.js';
import { compatLog, compatLogPieces } from './compat-log.js';

process.env.AWS_ACCESS_KEY_ID ??= 'AKIDTASKLOGTEST';
process.env.AWS_SECRET_ACCESS_KEY ??= 'tasklog-test-secret';

const GROUP = 'airflow-task-logs';
const ESCAPE = '{"tasklog":';
const AIRFLOW2_TIME = /^\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\] /;

let emulator: CloudWatchEmulator;
let store: CloudWatchStore;
let client: CloudWatchLogsClient;

beforeAll(async () => {
  emulator = await startCloudWatchEmulator();
  store = cloudWatchStoreOn(emulator, GROUP, 3);
  client = new CloudWatchLogsClient({ region: 'us-east-1', endpoint: emulator.url });
});

afterAll(async () => {
  client?.destroy();
  await store?.close();
  await emulator?.close();
});

function key(taskId: string, runId = 'scheduled__2024-01-01T00:00:00+00:00'): AttemptKey {
  return attemptKey({ dagId: 'compat', runId, taskId, tryNumber: 1 });
}

/** The stream Airflow's handler reads for `key(taskId)`: the log's path, its ':' as '_'. */
const airflowStream = (taskId: string) =>
  `dag_id=compat/run_id=scheduled__2024-01-01T00_00_00+00_00/task_id=${taskId}/attempt=1.log`;

/** A line of the log: its bytes without the `\n`, where it starts, and whether a `\n` ends it. */
interface Line {
  bytes: Buffer;
  start: number;
  newline: boolean;
}

function linesOf(log: Buffer): Line[] {
  const out: Line[] = [];
  let start = 0;
  for (let nl = log.indexOf(0x0a); nl >= 0; nl = log.indexOf(0x0a, start)) {
    out.push({ bytes: log.subarray(start, nl), start, newline: true });
    start = nl + 1;
  }
  if (start < log.length) out.push({ bytes: log.subarray(start), start, newline: false });
  return out;
}

const isEscape = (message: string) => message.startsWith(ESCAPE);
const lossy = (b: Buffer) => b.toString('utf8');

/**
 * The log as the messages Airflow reads spell it, decoded without tasklog's reader: a plain
 * message is a line at the offset counted from the head, an escape carries its offset and its
 * bytes (`base64`, `text`, else `event`).
 */
function bytesFromMessages(messages: readonly string[]): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const m of messages) {
    if (!isEscape(m)) {
      out.push(Buffer.from(`${m}\n`));
      at += Buffer.byteLength(m) + 1;
      continue;
    }
    const { tasklog, event } = JSON.parse(m);
    if (tasklog.offset === undefined) continue; // header, end
    expect(tasklog.offset).toBe(at);
    const payload =
      tasklog.base64 !== undefined
        ? Buffer.from(tasklog.base64, 'base64')
        : Buffer.from(tasklog.text ?? event);
    out.push(payload);
    if (tasklog.length === payload.length + 1) out.push(Buffer.from('\n'));
    else expect(tasklog.length).toBe(payload.length);
    at += tasklog.length;
  }
  return Buffer.concat(out);
}

/** Airflow 2's lines without their `[time] ` prefix (every line must have one). */
function airflow2Messages(events: readonly CloudWatchLogEvent[]): string[] {
  return airflow2Lines(events).map((line) => {
    expect(line).toMatch(AIRFLOW2_TIME);
    return line.replace(AIRFLOW2_TIME, '');
  });
}

describe('tasklog → Airflow over CloudWatch: a running attempt (the compatibility log appended and flushed piece by piece)', () => {
  const log = compatLog();
  const pieces = compatLogPieces(log);
  const k = key('running');
  const stream = airflowStream('running');
  let writer: LogWriter;
  let events: CloudWatchLogEvent[];
  /** Where a flush cut the log. */
  const cuts: number[] = [];

  beforeAll(async () => {
    writer = await store.openWriter(k);
    for (const piece of pieces) {
      await writer.append(piece);
      await writer.flush();
      cuts.push(writer.committedOffset);
    }
    // The attempt is still running: Airflow has no end date and reads to the stream's end.
    events = await airflowLogEvents(client, GROUP, stream);
  });

  afterAll(async () => {
    await writer?.abort();
  });

  it('names the stream as Airflow does and writes no header: the name gives the attempt back', () => {
    expect(store.streamName(k)).toBe(stream);
    expect(events.length).toBeGreaterThan(0);
    expect(isEscape(events[0]!.message) && JSON.parse(events[0]!.message).tasklog.key).toBeFalsy();
  });

  it('shows Airflow 2 each line as `[time] line`, a line a flush cut as its pieces, in order', () => {
    // A flush inside a line makes what came before it an escape (no newline yet); the rest of
    // the line, up to its newline, is a plain event again.
    const expected = linesOf(log).flatMap((l) => {
      const end = l.start + l.bytes.length;
      const from = Math.max(l.start, ...cuts.filter((c) => c > l.start && c <= end));
      const rest = log.subarray(from, end);
      const plain = l.newline && rest.length > 0 && Buffer.from(lossy(rest)).equals(rest);
      return plain ? [lossy(rest)] : [];
    });
    const plain = airflow2Messages(events).filter((m) => !isEscape(m));
    expect(plain).toEqual(expected);
    expect(plain).toContain('a Windows line\r');
    expect(plain).toContain('   ');
  });

  it('holds the whole flushed log in the events Airflow reads, plain lines counted from the head', () => {
    const messages = airflow2Messages(events);
    expect(bytesFromMessages(messages).equals(log)).toBe(true);
  });

  it('shows Airflow 3 every event as a record whose `event` is its text, dropping none', () => {
    const records = airflow3Records(events);
    expect(records).toHaveLength(events.length);
    for (const [i, r] of records.entries()) {
      const m = events[i]!.message;
      if (!isEscape(m)) {
        const expected = m.startsWith('{"event": ') ? JSON.parse(m).event : m;
        expect(r.event).toBe(expected);
        continue;
      }
      const { tasklog } = JSON.parse(m);
      const payload = tasklog.base64 ? Buffer.from(tasklog.base64, 'base64') : undefined;
      if (payload) expect(r.event).toBe(lossy(payload));
      expect(r.tasklog).toEqual(tasklog);
    }
    const times = records.map((r) => Date.parse(r.timestamp!));
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('reads back every flushed byte through tasklog, and lists the attempt', async () => {
    expect((await readAll(store, k)).equals(log)).toBe(true);
    expect(await store.stat(k)).toMatchObject({ size: log.length, complete: false });
    const listed: AttemptKey[] = [];
    for await (const l of store.list({ dagId: 'compat', taskId: 'running' })) listed.push(l);
    expect(listed).toEqual([k]);
  });
});

describe('tasklog → Airflow over CloudWatch: a finished attempt (the compatibility log)', () => {
  const log = compatLog();
  const lines = linesOf(log);
  const k = key('finished');
  const stream = airflowStream('finished');
  let events: CloudWatchLogEvent[];
  const endText = `tasklog: end of log, ${log.length} bytes, sha256 ${sha256(log)}`;

  beforeAll(async () => {
    const writer = await store.openWriter(k);
    for (let at = 0; at < log.length; at += 100_000)
      await writer.append(log.subarray(at, at + 100_000));
    await writer.finish({ size: log.length, sha256: sha256(log) });
    // Airflow reads a finished task up to its end date + 30 s; it ended just now.
    events = await airflowLogEvents(client, GROUP, stream, new Date());
  });

  it('shows Airflow 2 one `[time] line` per line; empty lines, bytes that are not UTF-8, the last line without newline and the end as JSON escapes', () => {
    const messages = airflow2Messages(events);
    const shown = messages.map((m) => (isEscape(m) ? JSON.parse(m).event : m));
    expect(shown).toEqual([...lines.map((l) => lossy(l.bytes)), endText]);
    expect(messages.filter(isEscape).map((m) => JSON.parse(m).event)).toEqual([
      '',
      '',
      '',
      lossy(lines.find((l) => l.bytes.includes(0xff))!.bytes),
      'last line, no newline: 🙂',
      endText,
    ]);
    expect(messages).toContain(`long line: ${'é€𝄞日本 '.repeat(23_000)}end of long line`);
    expect(bytesFromMessages(messages).equals(log)).toBe(true);
    // The UI's interleaving keeps every line and its order (it eats the CR of a CRLF line).
    const lines2 = airflow2Lines(events);
    expect(airflow2View(lines2)).toEqual(lines2.map((l) => l.replace(/\r$/, '')));
  });

  it("shows Airflow 3 every line as a record's `event`: its JSON line as that line's event, then the end", () => {
    const records = airflow3Records(events);
    expect(records.map((r) => r.event)).toEqual([
      ...lines.map((l) => {
        const text = lossy(l.bytes);
        return text.startsWith('{"event": ') ? JSON.parse(text).event : text;
      }),
      endText,
    ]);
    const json = records.find((r) => r.event === 'a line that looks like JSON');
    expect(json).toMatchObject({ level: 'info' });
    // Extra fields only where there was something to carry: escapes, and that JSON line.
    const withExtras = records.filter((r) =>
      Object.keys(r).some((f) => !['timestamp', 'event'].includes(f)),
    );
    expect(withExtras).toHaveLength(7);
  });

  it('reads back byte for byte through tasklog, complete with its size and sha256', async () => {
    expect((await readAll(store, k)).equals(log)).toBe(true);
    expect(await store.stat(k)).toMatchObject({
      size: log.length,
      complete: true,
      sha256: sha256(log),
    });
  });

  it("is found by Airflow's read up to its end date + 30 s when shipped hours after the task ended", async () => {
    // Airflow 2's lines begin with their time; the events carry it, not the time of shipping.
    const ended = Date.now() - 3 * 3600_000;
    const late = Buffer.from(
      Array.from({ length: 5 }, (_, i) => {
        const t = new Date(ended - (5 - i) * 1000).toISOString().replace('Z', '+0000');
        return `[${t}] {taskinstance.py:${i}} INFO - line ${i}\n`;
      }).join(''),
    );
    const lateKey = key('shipped_late');
    const writer = await store.openWriter(lateKey);
    await writer.append(late);
    await writer.finish({ size: late.length, sha256: sha256(late) });
    const seen = await airflowLogEvents(client, GROUP, store.streamName(lateKey), new Date(ended));
    const messages = seen.map((e) => e.message);
    expect(messages.slice(0, -1)).toEqual(late.toString().trimEnd().split('\n'));
    expect(JSON.parse(messages.at(-1)!).tasklog.end).toEqual({
      size: late.length,
      sha256: sha256(late),
    });
    expect(seen[0]!.timestamp).toBe(ended - 5000);
  });
});

describe('Airflow → tasklog over CloudWatch: streams Airflow wrote itself (golden fixtures)', () => {
  const fixtures = [
    { version: 2, name: 'cloudwatch-airflow2-stream' },
    { version: 3, name: 'cloudwatch-airflow3-stream' },
  ] as const;
  let goldenEmulator: CloudWatchEmulator;
  let clock = 0;
  let golden: CloudWatchStore;
  let home: string;

  beforeAll(async () => {
    // The fixtures' events are from 2024 and 2025: the service's clock is set to each one's
    // time while it is put (CloudWatch refuses events older than 14 days).
    goldenEmulator = await startCloudWatchEmulator({ now: () => clock });
    goldenEmulator.createLogGroup(GROUP);
    const put = new CloudWatchLogsClient({ region: 'us-east-1', endpoint: goldenEmulator.url });
    for (const f of fixtures) {
      const doc = fixture(f.name);
      clock = doc.events[0]!.timestamp + 3600_000;
      await put.send(
        new CreateLogStreamCommand({ logGroupName: GROUP, logStreamName: doc.logStream }),
      );
      await put.send(
        new PutLogEventsCommand({
          logGroupName: GROUP,
          logStreamName: doc.logStream,
          logEvents: doc.events,
        }),
      );
    }
    put.destroy();
    golden = cloudWatchStoreOn(goldenEmulator, GROUP, 2);
    home = await makeTempDir('cloudwatch-golden');
  });

  afterAll(async () => {
    await golden?.close();
    await goldenEmulator?.close();
    await removeTempDir(home);
  });

  function fixture(name: string): {
    logStream: string;
    events: CloudWatchLogEvent[];
    text: Buffer;
  } {
    const doc = JSON.parse(readFileSync(new URL(`./${name}.json`, import.meta.url), 'utf8'));
    return { ...doc, text: readFileSync(new URL(`./${name}.txt`, import.meta.url)) };
  }

  for (const f of fixtures) {
    const runId =
      f.version === 2
        ? 'scheduled__2024-01-01T00:00:00+00:00'
        : 'manual__2025-01-01T10:00:00+00:00';
    const k = attemptKey({
      dagId: 'example_bash_operator',
      runId,
      taskId: 'runme_0',
      tryNumber: 1,
    });

    it(`has Airflow ${f.version} show the fixture as its text file says (the fixture's own check)`, () => {
      const { events, text } = fixture(f.name);
      const shown =
        f.version === 2
          ? events.map((e) => e.message)
          : airflow3Records(events).map((r) => r.event);
      expect(Buffer.from(shown.map((s) => `${s}\n`).join('')).equals(text)).toBe(true);
      if (f.version === 2)
        expect(airflow2Lines(events)[0]).toMatch(/^\[2024-01-01T00:00:05Z\] Dependencies/);
    });

    it(`lists the attempt Airflow ${f.version} wrote, its run id's colons restored from the stream name`, async () => {
      const listed: AttemptKey[] = [];
      for await (const l of golden.list({ dagId: 'example_bash_operator' })) listed.push(l);
      expect(listed).toContainEqual(k);
    });

    it(`reads the stream Airflow ${f.version} wrote as Airflow ${f.version} shows it, one line per event`, async () => {
      const parts: Buffer[] = [];
      for await (const c of golden.read(k)) parts.push(Buffer.from(c.bytes));
      const { text } = fixture(f.name);
      expect(Buffer.concat(parts).equals(text)).toBe(true);
      expect(await golden.stat(k)).toMatchObject({ size: text.length, complete: false });
      const suffix: Buffer[] = [];
      for await (const c of golden.read(k, { offset: 100 })) suffix.push(Buffer.from(c.bytes));
      expect(Buffer.concat(suffix).equals(text.subarray(100))).toBe(true);
    });

    const writes =
      f.version === 3
        ? 'refuses a writer on the stream Airflow 3 wrote (its JSON events are not lines)'
        : 'would go on after the lines of the stream Airflow 2 wrote (it reads like its own)';
    it(writes, async () => {
      if (f.version === 3) {
        await expect(golden.openWriter(k)).rejects.toMatchObject({ name: 'ConflictError' });
        return;
      }
      const writer = await golden.openWriter(k);
      expect(writer.committedOffset).toBe(fixture(f.name).text.length);
      await writer.abort();
    });

    it(`prints it with \`tasklog fetch\` (the built CLI), picking the try from the stream`, async () => {
      const got = await runCli(['fetch', 'example_bash_operator', runId, 'runme_0'], {
        PATH: process.env.PATH,
        TASKLOG_HOME: home,
        AWS_ACCESS_KEY_ID: 'AKIDTASKLOGTEST',
        AWS_SECRET_ACCESS_KEY: 'tasklog-test-secret',
        AWS_REGION: 'us-east-1',
        TASKLOG__STORE__URL: cloudWatchUrl(GROUP),
        TASKLOG__CLOUDWATCH__ENDPOINT: goldenEmulator.url,
      });
      expect(got.stderr).toBe('');
      expect(got.code).toBe(0);
      expect(got.stdout.equals(fixture(f.name).text)).toBe(true);
    });
  }
});
