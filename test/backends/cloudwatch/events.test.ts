import { attemptKey, PathTemplate } from '@tasklog/core';
import { describe, expect, it } from 'vitest';
import { lineTime, stampBatch } from '../../../packages/core/src/stores/cloudwatch/event-times.js';
import {
  classifyStream,
  encodeRecord,
  lineMessage,
  StreamDecoder,
} from '../../../packages/core/src/stores/cloudwatch/events.js';
import {
  impliedKey,
  needsHeader,
  restoreRunId,
} from '../../../packages/core/src/stores/cloudwatch/names.js';
import {
  RecordSplitter,
  recordBytes,
} from '../../../packages/core/src/stores/shared/log-records.js';

const template = new PathTemplate();
const key = (runId: string) => attemptKey({ dagId: 'd', runId, taskId: 't', tryNumber: 1 });

describe('stream names and the attempts they give back', () => {
  it("restores the colons of the date-time in Airflow's run ids", () => {
    expect(restoreRunId('scheduled__2024-01-01T00_00_00+00_00')).toBe(
      'scheduled__2024-01-01T00:00:00+00:00',
    );
    expect(restoreRunId('manual__2024-05-01T10_00_00.123456+00_00')).toBe(
      'manual__2024-05-01T10:00:00.123456+00:00',
    );
    expect(restoreRunId('manual__2025-01-01T10_00_00+00_00_k3J2aB9x')).toBe(
      'manual__2025-01-01T10:00:00+00:00_k3J2aB9x',
    );
    expect(restoreRunId('backfill__2024-01-01T00_00_00')).toBe('backfill__2024-01-01T00:00:00');
    expect(restoreRunId('my_run_2024')).toBe('my_run_2024');
  });

  it('needs a header only for a run id the stream name would give back differently', () => {
    expect(needsHeader(template, key('scheduled__2024-01-01T00:00:00+00:00'))).toBe(false);
    expect(needsHeader(template, key('manual__2025-01-01T10:00:00+00:00_k3J2aB9x'))).toBe(false);
    expect(needsHeader(template, key('my_run'))).toBe(false);
    expect(needsHeader(template, key('a:b'))).toBe(true);
    expect(needsHeader(template, key('scheduled__2024-01-01T00_00_00+00_00'))).toBe(true);
  });

  it('parses a stream name back to its attempt', () => {
    expect(
      impliedKey(
        template,
        'dag_id=d/run_id=scheduled__2024-01-01T00_00_00+00_00/task_id=t/map_index=2/attempt=3.log',
      ),
    ).toEqual(
      attemptKey({
        dagId: 'd',
        runId: 'scheduled__2024-01-01T00:00:00+00:00',
        taskId: 't',
        mapIndex: 2,
        tryNumber: 3,
      }),
    );
    expect(impliedKey(template, 'not/an/attempt')).toBeUndefined();
  });
});

describe('the time a line says it was written', () => {
  it("reads Airflow 2's, tasklog run's and Airflow 3's timestamps", () => {
    expect(lineTime('[2024-01-01T00:00:05.123+0000] {taskinstance.py:1} INFO - x')).toBe(
      Date.UTC(2024, 0, 1, 0, 0, 5, 123),
    );
    expect(lineTime('[2024-01-01T02:00:05.123+02:00] x')).toBe(Date.UTC(2024, 0, 1, 0, 0, 5, 123));
    expect(lineTime('[2024-01-01T00:00:05.123Z] x')).toBe(Date.UTC(2024, 0, 1, 0, 0, 5, 123));
    expect(lineTime('[2024-01-01 00:00:05,123] x')).toBe(Date.UTC(2024, 0, 1, 0, 0, 5, 123));
    expect(lineTime('{"timestamp":"2025-01-01T10:00:00.123456Z","level":"info"}')).toBe(
      Date.UTC(2025, 0, 1, 10, 0, 0, 123),
    );
    expect(lineTime('no time here [2024-01-01T00:00:05Z]')).toBeUndefined();
    expect(lineTime(undefined)).toBeUndefined();
  });
});

describe('stamping a batch', () => {
  const now = Date.UTC(2026, 0, 10);
  const state = { last: 0, lineTime: undefined, message: undefined };
  const e = (message: string, time?: number) => ({ message, lineTime: time });

  it('starts a batch 1 ms after everything before it and never goes back', () => {
    const t = now - 60_000;
    const { stamps } = stampBatch(
      { ...state, last: t + 10 },
      [e('a', t), e('b', t + 20), e('c', t)],
      now,
      1e9,
    );
    expect(stamps).toEqual([t + 11, t + 20, t + 20]);
  });

  it('stamps an equal message after its predecessor, so Airflow 3 keeps both', () => {
    const { stamps } = stampBatch(state, [e('x', now), e('x', now), e('y', now)], now, 1e9);
    expect(stamps).toEqual([now, now + 1, now + 1]);
  });

  it('gives lines without a time the next stamped line in the batch, then their predecessor', () => {
    const t = now - 3_600_000;
    const { stamps, state: after } = stampBatch(state, [e('a'), e('b', t), e('c')], now, 1e9);
    expect(stamps).toEqual([t, t, t]);
    expect(stampBatch(after, [e('d')], now, 1e9).stamps).toEqual([t + 1]);
  });

  it("keeps stamps an hour inside CloudWatch's window and a batch within its span", () => {
    const old = now - 30 * 24 * 3_600_000;
    const { stamps } = stampBatch(state, [e('a', old), e('b', now + 5 * 3_600_000)], now, 1e12);
    expect(stamps).toEqual([now - 14 * 24 * 3_600_000 + 3_600_000, now + 3_600_000]);
    const cut = stampBatch(state, [e('a', now - 10_000), e('b', now)], now, 5_000);
    expect(cut.stamps).toEqual([now - 10_000]);
  });
});

describe('event messages', () => {
  const split = (text: string | Buffer) => {
    const s = new RecordSplitter(0, 1 << 20);
    return [...s.push(Buffer.from(text)), ...s.end()];
  };

  it('writes a line as its text, and an escape only where the text cannot say it all', () => {
    const [plain, empty, prefixed, last] = split('text\n\n{"tasklog":1}\nend');
    expect(lineMessage(plain!)).toBe('text');
    expect(lineMessage(empty!)).toBe('{"tasklog":{"offset":5,"length":1},"event":""}');
    expect(lineMessage(prefixed!)).toBe(
      '{"tasklog":{"offset":6,"length":14},"event":"{\\"tasklog\\":1}"}',
    );
    expect(lineMessage(last!)).toBe('{"tasklog":{"offset":20,"length":3},"event":"end"}');
  });

  it('escapes a first line that is a JSON object, and not a later one', () => {
    const [first, second] = split('{"a":1}\n{"a":1}\n');
    expect(lineMessage(first!)).toBe('{"tasklog":{"offset":0,"length":8},"event":"{\\"a\\":1}"}');
    expect(lineMessage(second!)).toBe('{"a":1}');
  });

  it('cuts a record whose escape is too large until each piece fits, never inside a character', () => {
    const text = `${'\u0001é'.repeat(5000)}`;
    const [record] = split(text);
    const parts = encodeRecord(record!, 4096);
    for (const p of parts) expect(Buffer.byteLength(p.message)).toBeLessThanOrEqual(4096);
    expect(Buffer.concat(parts.map((p) => recordBytes(p.record))).equals(Buffer.from(text))).toBe(
      true,
    );
    expect(parts.every((p) => p.record.base64 === undefined)).toBe(true);
  });
});

describe('reading events back', () => {
  it('tells the layout from the first message', () => {
    expect(classifyStream(undefined)).toBe('lines');
    expect(classifyStream('[2024-01-01] plain line')).toBe('lines');
    expect(classifyStream('{"tasklog":{"offset":0,"length":3},"event":"{}"}')).toBe('lines');
    expect(classifyStream('{"offset":0,"length":0,"key":{"dagId":"d"}}')).toBe('envelope');
    expect(classifyStream('{"event": "DAG bundles loaded", "level": "info"}')).toBe('airflow3');
  });

  it('counts plain lines from the head and re-synchronises at each escape', () => {
    const d = new StreamDecoder('lines');
    const records = ['a', '{"tasklog":{"offset":2,"length":1},"event":""}', 'bc', 'bc'].map((m) =>
      d.decode(m),
    );
    expect(records).toEqual([
      { kind: 'data', record: { offset: 0, length: 2, text: 'a' } },
      { kind: 'data', record: { offset: 2, length: 1, text: '' } },
      { kind: 'data', record: { offset: 3, length: 3, text: 'bc' } },
      { kind: 'data', record: { offset: 6, length: 3, text: 'bc' } },
    ]);
  });

  it("reads Airflow 3's events as their `event`, and anything else as it is", () => {
    const d = new StreamDecoder('airflow3');
    expect(d.decode('{"event": "h\\u00e9llo", "level": "info"}')).toEqual({
      kind: 'data',
      record: { offset: 0, length: 7, text: 'héllo' },
    });
    expect(d.decode('not json')).toEqual({
      kind: 'data',
      record: { offset: 7, length: 9, text: 'not json' },
    });
  });
});
