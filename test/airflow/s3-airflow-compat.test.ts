import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { AttemptKey, LogStore } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runningPrefix } from '../../packages/core/src/stores/shared/chunk-layout.js';
import { awsCli, awsCliPath, python3Path, run } from '../support/outside-clients.js';
import { pythonUtf8Decode } from '../support/python-text.js';
import { type S3rverFixture, startS3rver } from '../support/s3rver.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import * as airflow from './blob-airflow-compat.js';
import {
  compatKey,
  compatLogPieces,
  finishedCompatAttempt,
  runningCompatAttempt,
} from './compat-log.js';
import { airflowS3Client, airflowS3Read, airflowUploadBody } from './s3-airflow-read.js';

/**
 * tasklog's S3 archive as Airflow's S3 task handler sees it, and Airflow's objects as tasklog
 * reads them. `remote_base_log_folder = s3://airflow-logs/airflow/logs`.
 */
let s3: S3rverFixture;
let client: S3Client;
let store: LogStore;
let home: string;
let archive: airflow.Archive;

const uriOf = (k: AttemptKey) => `s3://${airflow.BUCKET}/${airflow.objectName(k)}`;
const airflowRead = (k: AttemptKey) =>
  airflowS3Read(s3, client, airflow.REMOTE_BASE, airflow.template.render(k));
/** As `load_string` stores an object. */
const put = async (name: string, body: Buffer | string) => {
  await client.send(new PutObjectCommand({ Bucket: airflow.BUCKET, Key: name, Body: body }));
};

beforeAll(async () => {
  s3 = await startS3rver(airflow.BUCKET);
  client = airflowS3Client(s3.endpoint);
  store = s3.openStore(airflow.REMOTE_BASE);
  home = await makeTempDir('s3-airflow');
  const cliEnv = { PATH: process.env.PATH, TASKLOG_HOME: home, ...s3.cliEnv(airflow.REMOTE_BASE) };
  archive = { store, cliEnv, uriOf, airflowRead, put };
});

afterAll(async () => {
  await store?.close();
  client?.destroy();
  await s3?.close();
  await removeTempDir(home);
});

describe('tasklog → Airflow’s S3 reader (list_keys(prefix=key), read_key of each, strict UTF-8)', () => {
  airflow.itShowsWhatTasklogWrote(() => archive);

  it('shows its own decode error instead of a finished log that is not UTF-8 (as for any such object)', async () => {
    const k = compatKey('not_utf8');
    await finishedCompatAttempt(store, k, airflow.LOG);
    const at = airflow.LOG.indexOf(0xff);
    expect(await airflowRead(k)).toEqual({
      uris: [uriOf(k)],
      logs: [
        `Could not read logs from ${uriOf(k)} with error: 'utf-8' codec can't decode byte 0xff in position ${at}: invalid start byte`,
      ],
    });
    expect((await readAll(store, k)).equals(airflow.LOG)).toBe(true);
  });
});

describe('the replay of Airflow’s decoding', () => {
  const samples = [
    airflow.LOG,
    airflow.TEXT_LOG,
    Buffer.from([0x78, 0xe2, 0x82]),
    Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from([0xf0, 0x9f, 0x99, 0x28]),
    Buffer.from([0xc0, 0xaf]),
    // A chunk of the old layout: the compatibility log cut inside its first 𝄞.
    airflow.LOG.subarray(0, airflow.LOG.indexOf(Buffer.from('𝄞')) + 2),
  ];

  it.skipIf(!python3Path)(
    'accepts and rejects the bytes Python does, with Python’s message (skipped: no python3)',
    async () => {
      const script =
        'import sys\nfor h in sys.stdin.read().split():\n  try: bytes.fromhex(h).decode(); print("ok")\n  except UnicodeDecodeError as e: print(e)\n';
      const res = await run(
        python3Path!,
        ['-c', script],
        { PATH: '/usr/bin:/bin' },
        Buffer.from(samples.map((b) => b.toString('hex')).join('\n')),
      );
      expect(res.stderr).toBe('');
      const ours = samples.map((b) => {
        try {
          pythonUtf8Decode(b);
          return 'ok';
        } catch (err) {
          return (err as Error).message;
        }
      });
      expect(ours).toEqual(res.stdout.toString().trim().split('\n'));
    },
  );
});

/**
 * Golden fixtures: what Airflow's S3 handler stores at the key (`read_text()` of the local file,
 * appended to an earlier upload with "\n"), written out byte for byte.
 */
const LOCAL_FIRST = Buffer.from(
  '[2024-05-01T10:00:05.123+0000] {taskinstance.py:1157} INFO - Dependencies all met\r\n' +
    'héllo wörld 日本語 🙂\r\n\r\nan old Mac line\rlast line, no newline',
);
const GOLDEN_FIRST = Buffer.from(
  '[2024-05-01T10:00:05.123+0000] {taskinstance.py:1157} INFO - Dependencies all met\n' +
    'héllo wörld 日本語 🙂\n\nan old Mac line\nlast line, no newline',
);
const LOCAL_SECOND = Buffer.from(
  '[2024-05-01T10:10:00.000+0000] {taskinstance.py:2612} INFO - Resuming after deferral\n',
);
const GOLDEN_APPENDED = Buffer.from(
  '[2024-05-01T10:00:05.123+0000] {taskinstance.py:1157} INFO - Dependencies all met\n' +
    'héllo wörld 日本語 🙂\n\nan old Mac line\nlast line, no newline\n' +
    '[2024-05-01T10:10:00.000+0000] {taskinstance.py:2612} INFO - Resuming after deferral\n',
);

describe('Airflow’s S3 writer → tasklog', () => {
  it('the golden fixtures are what Airflow uploads for its local files', () => {
    expect(airflowUploadBody(LOCAL_FIRST).equals(GOLDEN_FIRST)).toBe(true);
    expect(airflowUploadBody(LOCAL_SECOND, GOLDEN_FIRST).equals(GOLDEN_APPENDED)).toBe(true);
    // read_text() is strict: Airflow uploads nothing for a local log that is not UTF-8.
    expect(() => airflowUploadBody(airflow.LOG)).toThrow(/can't decode byte 0xff/);
  });

  it.skipIf(!python3Path)(
    'python3 makes the same bytes of the same files, with Airflow’s code (skipped: no python3)',
    async () => {
      const dir = await mkdtemp(path.join(home, 'py-'));
      await writeFile(path.join(dir, 'first.log'), LOCAL_FIRST);
      await writeFile(path.join(dir, 'second.log'), LOCAL_SECOND);
      const script = [
        'import pathlib, sys',
        'd = pathlib.Path(sys.argv[1])',
        'log = (d / "first.log").read_text(encoding="utf-8")',
        'first = log',
        'old_log = first',
        'log = (d / "second.log").read_text(encoding="utf-8")',
        'log = f"{old_log}\\n{log}" if old_log else log',
        'sys.stdout.write(first.encode("utf-8").hex() + " " + log.encode("utf-8").hex())',
      ].join('\n');
      const res = await run(python3Path!, ['-c', script, dir], { PATH: '/usr/bin:/bin' });
      expect(res.stderr).toBe('');
      const [first, appended] = res.stdout.toString().split(' ');
      expect(Buffer.from(first!, 'hex').equals(GOLDEN_FIRST)).toBe(true);
      expect(Buffer.from(appended!, 'hex').equals(GOLDEN_APPENDED)).toBe(true);
    },
  );

  airflow.itReadsWhatItUploaded(() => archive, { first: GOLDEN_FIRST, appended: GOLDEN_APPENDED });
});

describe.skipIf(!awsCliPath)(
  'awscli over tasklog’s archive (skipped: /usr/bin/aws is not installed)',
  () => {
    /** `aws s3 ls --recursive` lines → keys. */
    const keysOf = (stdout: Buffer) =>
      stdout
        .toString()
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => /^\S+ \S+\s+\d+ (.*)$/.exec(l)![1]!);

    it('lists nothing under a running attempt’s key; its chunks, in their own folder, hold its bytes', async () => {
      const k = compatKey('aws_running');
      const writer = await runningCompatAttempt(store, k, airflow.LOG);
      const atKey = await awsCli(s3.endpoint, ['s3', 'ls', '--recursive', uriOf(k)]);
      expect(atKey.stdout.toString()).toBe('');
      expect(atKey.code).toBe(1); // aws s3 ls: nothing matched
      const folder = airflow.objectName(k).slice(0, airflow.objectName(k).lastIndexOf('/') + 1);
      const all = await awsCli(s3.endpoint, [
        's3',
        'ls',
        '--recursive',
        `s3://${airflow.BUCKET}/${folder}`,
      ]);
      expect(all.code).toBe(0);
      const keys = keysOf(all.stdout);
      expect(keys.length).toBe(compatLogPieces(airflow.LOG).length);
      for (const key of keys) {
        expect(key.startsWith(runningPrefix(airflow.objectName(k)))).toBe(true);
        expect(key.startsWith(airflow.objectName(k))).toBe(false);
      }
      const dir = await mkdtemp(path.join(home, 'aws-'));
      const copied = await awsCli(s3.endpoint, [
        's3',
        'cp',
        '--recursive',
        `s3://${airflow.BUCKET}/${runningPrefix(airflow.objectName(k))}`,
        dir,
      ]);
      expect(copied.code).toBe(0);
      await airflow.expectCopiedChunks(dir, keys);
      await writer.abort();
    });

    it('lists exactly the object of a finished attempt, whose bytes are the log', async () => {
      const k = compatKey('aws_finished');
      await finishedCompatAttempt(store, k, airflow.LOG);
      const atKey = await awsCli(s3.endpoint, ['s3', 'ls', '--recursive', uriOf(k)]);
      expect(atKey.code).toBe(0);
      expect(keysOf(atKey.stdout)).toEqual([airflow.objectName(k)]);
      const got = await awsCli(s3.endpoint, ['s3', 'cp', uriOf(k), '-']);
      expect(got.code).toBe(0);
      expect(got.stdout.equals(airflow.LOG)).toBe(true);
    });
  },
);
