import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { type AttemptKey, attemptKey, type LogWriter } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudWatchStore } from '../../../packages/core/src/stores/cloudwatch/store.js';
import { compatLog, compatLogPieces } from '../../airflow/compat-log.js';
import {
  type CloudWatchEmulator,
  startCloudWatchEmulator,
} from '../../emulators/cloudwatch/index.js';
import { cloudWatchStoreOn } from '../../support/cloudwatch.js';
import { sha256 } from '../../support/hash.js';

// Debian's awscli (v2). A pip-installed v1 earlier on PATH would shadow it, hence the full path.
const AWS = '/usr/bin/aws';
const HAS_AWS = existsSync(AWS);
const GROUP = '/airflow/awscli';
const ACCESS = {
  AWS_ACCESS_KEY_ID: 'AKIDTASKLOGTEST',
  AWS_SECRET_ACCESS_KEY: 'tasklog-test-secret',
};
const run = promisify(execFile);

process.env.AWS_ACCESS_KEY_ID ??= ACCESS.AWS_ACCESS_KEY_ID;
process.env.AWS_SECRET_ACCESS_KEY ??= ACCESS.AWS_SECRET_ACCESS_KEY;

/** The texts of the lines a plain event carries: ended by `\n`, not empty, valid UTF-8. */
function plainLines(log: Buffer): string[] {
  const out: string[] = [];
  let start = 0;
  for (let nl = log.indexOf(0x0a); nl >= 0; nl = log.indexOf(0x0a, start)) {
    const line = log.subarray(start, nl);
    if (line.length > 0 && Buffer.from(line.toString('utf8')).equals(line)) {
      out.push(line.toString('utf8'));
    }
    start = nl + 1;
  }
  return out;
}

describe.skipIf(!HAS_AWS)(
  `awscli v2 (${AWS}; skipped when it is absent) over what tasklog wrote to CloudWatch`,
  () => {
    let emulator: CloudWatchEmulator;
    let store: CloudWatchStore;
    let running: LogWriter;
    const log = compatLog();
    const key = (taskId: string): AttemptKey =>
      attemptKey({
        dagId: 'cli',
        runId: 'manual__2024-05-01T10:00:00+00:00',
        taskId,
        tryNumber: 1,
      });

    /** Runs `aws logs ARGS` against the emulator and parses its JSON answer. */
    async function aws(...args: string[]): Promise<Record<string, unknown>> {
      const { stdout } = await run(
        AWS,
        ['--endpoint-url', emulator.url, '--output', 'json', 'logs', ...args],
        {
          // No profile or config of the machine's: only these credentials and region.
          env: {
            PATH: '/usr/bin:/bin',
            HOME: tmpdir(),
            ...ACCESS,
            AWS_DEFAULT_REGION: 'us-east-1',
            AWS_PAGER: '',
            AWS_EC2_METADATA_DISABLED: 'true',
          },
          maxBuffer: 64 * 1024 * 1024,
        },
      );
      return JSON.parse(stdout);
    }

    async function messages(stream: string): Promise<string[]> {
      const res = await aws(
        'get-log-events',
        '--log-group-name',
        GROUP,
        '--log-stream-name',
        stream,
        '--start-from-head',
      );
      return (res.events as { message: string }[]).map((e) => e.message);
    }

    beforeAll(async () => {
      emulator = await startCloudWatchEmulator();
      store = cloudWatchStoreOn(emulator, GROUP);
      running = await store.openWriter(key('running'));
      for (const piece of compatLogPieces(log)) {
        await running.append(piece);
        await running.flush();
      }
      const finished = await store.openWriter(key('finished'));
      await finished.append(log);
      await finished.finish({ size: log.length, sha256: sha256(log) });
    });

    afterAll(async () => {
      await running?.abort();
      await store?.close();
      await emulator?.close();
    });

    it('shows the lines of a finished attempt as plain messages with `get-log-events --start-from-head`', async () => {
      const got = await messages(store.streamName(key('finished')));
      expect(got.filter((m) => !m.startsWith('{"tasklog":'))).toEqual(plainLines(log));
      expect(
        got.filter((m) => m.startsWith('{"tasklog":')).map((m) => JSON.parse(m).event),
      ).toEqual([
        '',
        '',
        '',
        log
          .subarray(log.indexOf('not UTF-8'), log.indexOf(0x0a, log.indexOf('not UTF-8')))
          .toString(),
        'last line, no newline: 🙂',
        `tasklog: end of log, ${log.length} bytes, sha256 ${sha256(log)}`,
      ]);
    });

    it('shows the flushed lines of a running attempt as plain messages', async () => {
      const got = await messages(store.streamName(key('running')));
      const plain = got.filter((m) => !m.startsWith('{"tasklog":'));
      // Flushes cut a few lines; every other line is there, in order, as its text.
      for (const line of ['a Windows line\r', 'after one empty line', '   ']) {
        expect(plain).toContain(line);
      }
      const lines = plainLines(log);
      expect(plain.filter((m) => lines.includes(m))).toEqual(
        lines.filter((l) => plain.includes(l)),
      );
    });

    it('lists both streams under their Airflow names with `describe-log-streams`', async () => {
      const res = await aws('describe-log-streams', '--log-group-name', GROUP);
      const names = (res.logStreams as { logStreamName: string }[]).map((s) => s.logStreamName);
      expect(names).toEqual([store.streamName(key('finished')), store.streamName(key('running'))]);
      expect(names[0]).toBe(
        'dag_id=cli/run_id=manual__2024-05-01T10_00_00+00_00/task_id=finished/attempt=1.log',
      );
    });

    it('finds the same messages with `filter-log-events`, and a plain line by a text pattern', async () => {
      const stream = store.streamName(key('finished'));
      const all = await aws(
        'filter-log-events',
        '--log-group-name',
        GROUP,
        '--log-stream-names',
        stream,
      );
      expect((all.events as { message: string }[]).map((e) => e.message)).toEqual(
        await messages(stream),
      );
      const hit = await aws(
        'filter-log-events',
        '--log-group-name',
        GROUP,
        '--log-stream-names',
        stream,
        '--filter-pattern',
        '"Windows line"',
      );
      expect((hit.events as { message: string }[]).map((e) => e.message)).toEqual([
        'a Windows line\r',
      ]);
    });
  },
);
