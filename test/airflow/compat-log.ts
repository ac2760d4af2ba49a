import { type AttemptKey, attemptKey, type LogStore, type LogWriter } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { expect } from 'vitest';
import { runCli } from '../support/cli.js';
import { sha256 } from '../support/hash.js';
import { writeRunning } from '../support/stores.js';

/**
 * The log every Airflow compatibility test writes and reads back: everything that is hard to keep
 * exact through a log service — CRLF line ends, empty lines (one, and several in a row), a
 * 300 KB line, multi-byte characters of every length, bytes that are not UTF-8, a line of only
 * spaces, and no newline at the end.
 */
export function compatLog(): Buffer {
  const long = `long line: ${'é€𝄞日本 '.repeat(23_000)}end of long line`;
  return Buffer.concat([
    Buffer.from('[2024-01-01T00:00:00] {taskinstance.py:1} INFO - Starting attempt 1 of 1\n'),
    Buffer.from('a Windows line\r\n'),
    Buffer.from('\n'),
    Buffer.from('after one empty line\n\n\n'),
    Buffer.from('after two empty lines: ünïcödé € 𝄞 日本語 🙂\n'),
    Buffer.from(`${long}\n`),
    Buffer.from('not UTF-8: '),
    Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x0a]),
    Buffer.from('   \n'),
    Buffer.from('{"event": "a line that looks like JSON", "level": "info"}\n'),
    Buffer.from('last line, no newline: 🙂'),
  ]);
}

/**
 * The log cut into the pieces a running attempt's shipper would append and flush: every cut
 * lands inside a multi-byte character or a line where possible, so flush boundaries fall
 * everywhere a real writer's could.
 */
export function compatLogPieces(log: Buffer = compatLog()): Buffer[] {
  const cuts = new Set<number>();
  // Inside the first multi-byte character of some lines, and at a few fixed places.
  for (const marker of ['ü', '€', '𝄞', '🙂', 'é€𝄞']) {
    const at = log.indexOf(Buffer.from(marker));
    if (at > 0) cuts.add(at + 1);
  }
  for (const at of [10, 4096, 65_536, 100_001, 250_000]) if (at < log.length) cuts.add(at);
  const sorted = [...cuts].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let start = 0;
  for (const cut of sorted) {
    pieces.push(log.subarray(start, cut));
    start = cut;
  }
  pieces.push(log.subarray(start));
  return pieces;
}

/** The compatibility log as valid UTF-8 (each invalid sequence replaced by U+FFFD). */
export function compatText(): Buffer {
  return Buffer.from(compatLog().toString('utf8'));
}

/** The run of dag `compat` whose attempts the blob stores' compatibility tests write. */
export const COMPAT_RUN_ID = 'manual__2024-05-01T10:00:00.123456+00:00';

export function compatKey(taskId: string, mapIndex = -1): AttemptKey {
  return attemptKey({ dagId: 'compat', runId: COMPAT_RUN_ID, taskId, mapIndex, tryNumber: 1 });
}

/**
 * A running attempt as `tasklog ship --follow` leaves it: `log` appended in `compatLogPieces`,
 * a flush after each (so flushes end inside characters); the writer is returned still open.
 */
export function runningCompatAttempt(
  store: LogStore,
  key: AttemptKey,
  log: Buffer = compatLog(),
): Promise<LogWriter> {
  return writeRunning(store, key, compatLogPieces(log));
}

/** The same attempt once its writer finished it. */
export async function finishedCompatAttempt(
  store: LogStore,
  key: AttemptKey,
  log: Buffer = compatLog(),
): Promise<void> {
  const writer = await runningCompatAttempt(store, key, log);
  await writer.finish({ size: log.length, sha256: sha256(log) });
}

/**
 * Checks that tasklog gives back `body`, the object Airflow's writer stored for `key` (a `compat`
 * attempt), byte for byte through every way in: stat, read, list and `tasklog fetch`, the CLI
 * run with `cliEnv`.
 */
export async function expectReadWhole(
  store: LogStore,
  key: AttemptKey,
  body: Buffer,
  cliEnv: NodeJS.ProcessEnv,
): Promise<void> {
  expect(await store.stat(key)).toMatchObject({ size: body.length, complete: true });
  expect((await readAll(store, key)).equals(body)).toBe(true);
  const listed: AttemptKey[] = [];
  for await (const found of store.list({ dagId: 'compat', taskId: key.taskId })) listed.push(found);
  expect(listed).toEqual([key]);
  const fetched = await runCli(['fetch', 'compat', COMPAT_RUN_ID, key.taskId], cliEnv);
  expect(fetched.stderr).toBe('');
  expect(fetched.code).toBe(0);
  expect(fetched.stdout.equals(body)).toBe(true);
}
