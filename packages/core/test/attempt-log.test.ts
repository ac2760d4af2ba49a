import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  attemptKey,
  COMPLETION_MARKER_SUFFIX,
  ConflictError,
  openAttemptLog,
  SecretMasker,
} from '@tasklog/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MIN_SECRET_LENGTH } from '../src/secret-masker.js';
import { splitAt } from '../src/testing/logs.js';
import { useTempDir } from './temp-dir-fixture.js';

const KEY = attemptKey({
  dagId: 'etl',
  runId: 'scheduled__2024-01-01T00:00:00+00:00',
  taskId: 'load',
  tryNumber: 1,
});
const REL = 'dag_id=etl/run_id=scheduled__2024-01-01T00:00:00+00:00/task_id=load/attempt=1.log';
const STAMP = /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] /;

/** Pushes `chunks` through a streaming masker and returns the whole output as text. */
function maskInChunks(masker: SecretMasker, chunks: Buffer[]): string {
  const stream = masker.stream();
  const out = chunks.map((c) => stream.push(c));
  out.push(stream.end());
  return Buffer.concat(out).toString('utf8');
}

/** Independent reference: a regex of the escaped secrets, longest first (as Airflow builds it). */
function maskReference(text: string, secrets: string[]): string {
  if (secrets.length === 0) return text;
  const alternatives = [...secrets]
    .sort((a, b) => Buffer.byteLength(b) - Buffer.byteLength(a))
    .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return text.replace(new RegExp(alternatives.join('|'), 'gu'), '***');
}

describe('SecretMasker', () => {
  it('replaces a registered secret with ***', () => {
    const masker = new SecretMasker();
    masker.add('hunter2hunter2');
    expect(masker.mask('pw=hunter2hunter2;').toString()).toBe('pw=***;');
  });

  it(`ignores secrets shorter than ${MIN_SECRET_LENGTH} characters, as Airflow does`, () => {
    const masker = new SecretMasker();
    expect(masker.add('abcd')).toBe(false);
    expect(masker.add('abcde')).toBe(true);
    expect(masker.mask('abcd abcde').toString()).toBe('abcd ***');
  });

  it('counts characters, not bytes, for the minimum length', () => {
    const masker = new SecretMasker();
    expect(masker.add('éééé')).toBe(false); // 8 bytes, 4 characters
  });

  it('masks multi-byte secrets on their UTF-8 bytes', () => {
    const masker = new SecretMasker();
    masker.add('pässwörd');
    expect(masker.mask('x pässwörd y').toString()).toBe('x *** y');
  });

  it('prefers the longest secret starting at the same position', () => {
    const masker = new SecretMasker();
    masker.add('secret');
    masker.add('secret-longer');
    expect(masker.mask('a secret-longer b').toString()).toBe('a *** b');
  });

  it('collects values of sensitive environment variable names, case-insensitively', () => {
    const masker = SecretMasker.fromEnv({
      MY_API_KEY: 'key-value-1',
      Db_Password: 'pw-value-2',
      AIRFLOW_CONN_TOKEN: 'token-value-3',
      HOME: '/home/someone',
    });
    const out = masker.mask('key-value-1 pw-value-2 token-value-3 /home/someone').toString();
    expect(out).toBe('*** *** *** /home/someone');
  });

  it('uses the given list of sensitive names instead of the default', () => {
    const masker = SecretMasker.fromEnv({ MY_API_KEY: 'key-value-1', CUSTOM: 'custom-1' }, [
      'custom',
    ]);
    expect(masker.mask('key-value-1 custom-1').toString()).toBe('key-value-1 ***');
  });

  it('masks a secret split across two chunks', () => {
    const masker = new SecretMasker();
    masker.add('supersecretvalue');
    expect(maskInChunks(masker, [Buffer.from('a supers'), Buffer.from('ecretvalue b')])).toBe(
      'a *** b',
    );
  });

  it('holds back fewer bytes than the longest secret', () => {
    const masker = new SecretMasker();
    masker.add('0123456789');
    const stream = masker.stream();
    const out = stream.push(Buffer.alloc(1000, 'x'));
    expect(stream.heldBack).toBeLessThanOrEqual(9);
    expect(out.length + stream.heldBack).toBe(1000);
  });

  it('equals the all-at-once masking for any chunking, and leaves no secret in the output', () => {
    const alphabet = fc.constantFrom('a', 'b', 'é', '\n', 'x');
    const secretArb = fc
      .array(fc.constantFrom('a', 'b', 'é', '\n'), { minLength: 5, maxLength: 12 })
      .map((cs) => cs.join(''));
    fc.assert(
      fc.property(
        fc.array(secretArb, { minLength: 1, maxLength: 4 }),
        fc.array(
          fc.array(alphabet, { maxLength: 20 }).map((cs) => cs.join('')),
          {
            maxLength: 8,
          },
        ),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (secrets, fillers, cuts, picks) => {
          // Secrets inserted between random filler text.
          let text = '';
          fillers.forEach((filler, i) => {
            text += filler + (picks[i] === undefined ? '' : secrets[picks[i]! % secrets.length]);
          });
          const masker = new SecretMasker();
          for (const s of secrets) masker.add(s);
          const streamed = maskInChunks(masker, splitAt(Buffer.from(text), cuts));
          expect(streamed).toBe(maskReference(text, secrets));
          expect(streamed).toBe(masker.mask(text).toString());
          for (const s of secrets) expect(streamed).not.toContain(s);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('openAttemptLog', () => {
  const base = useTempDir('attempt-log');

  const open = (extra: Partial<Parameters<typeof openAttemptLog>[0]> = {}) =>
    openAttemptLog({
      baseLogFolder: base.path,
      pathTemplate:
        'dag_id={dag_id}/run_id={run_id}/task_id={task_id}/[map_index={map_index}/]attempt={try_number}.log',
      key: KEY,
      ...extra,
    });

  it('creates the log at the path template under the base folder', async () => {
    const log = await open();
    expect(log.path).toBe(join(base.path, ...REL.split('/')));
    await log.write('hello\n');
    await log.close({ state: 'success', exitCode: 0 });
    expect(await readFile(log.path, 'utf8')).toBe('hello\n');
  });

  it('masks secrets before the bytes reach the file, also across writes', async () => {
    const masker = new SecretMasker();
    masker.add('supersecretvalue');
    const log = await open({ masker });
    await log.write('key=supers');
    await log.write('ecretvalue\n');
    await log.close({ state: 'success' });
    const text = await readFile(log.path, 'utf8');
    expect(text).toBe('key=***\n');
  });

  it('creates the completion marker with state, exit code and finish time on close', async () => {
    const log = await open();
    await log.write('x\n');
    await expect(stat(`${log.path}${COMPLETION_MARKER_SUFFIX}`)).rejects.toThrow();
    await log.close({ state: 'failed', exitCode: 3 });
    const marker = JSON.parse(await readFile(`${log.path}${COMPLETION_MARKER_SUFFIX}`, 'utf8'));
    expect(marker).toEqual({ state: 'failed', exitCode: 3, finishedAt: expect.any(String) });
    expect(Number.isNaN(Date.parse(marker.finishedAt))).toBe(false);
  });

  it('prefixes each line with a UTC timestamp, and a partial line continues unprefixed', async () => {
    const log = await open({ timestamps: true });
    await log.write('first ');
    await log.write('line\nsecond line\nthi');
    await log.write('rd\n');
    await log.close({ state: 'success', exitCode: 0 });
    const lines = (await readFile(log.path, 'utf8')).split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((l) => l.replace(STAMP, ''))).toEqual(['first line', 'second line', 'third']);
    for (const line of lines) expect(line).toMatch(STAMP);
  });

  it('applies concurrent writes in call order', async () => {
    const log = await open();
    await Promise.all(Array.from({ length: 50 }, (_, i) => log.write(`${i}\n`)));
    await log.close({ state: 'success' });
    const expected = Array.from({ length: 50 }, (_, i) => `${i}\n`).join('');
    expect(await readFile(log.path, 'utf8')).toBe(expected);
  });

  it('refuses to reopen an attempt that already finished', async () => {
    const log = await open();
    await log.close({ state: 'success', exitCode: 0 });
    await expect(open()).rejects.toBeInstanceOf(ConflictError);
  });

  it('rejects writes after close', async () => {
    const log = await open();
    await log.close({ state: 'success' });
    await expect(log.write('late\n')).rejects.toBeInstanceOf(ConflictError);
  });
});
