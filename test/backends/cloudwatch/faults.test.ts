import { prng, readAll } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestStored } from '../../../packages/core/src/hashing.js';
import type { CloudWatchStore } from '../../../packages/core/src/stores/cloudwatch/store.js';
import {
  type CloudWatchEmulator,
  startCloudWatchEmulator,
} from '../../emulators/cloudwatch/index.js';
import { cloudWatchStoreOn } from '../../support/cloudwatch.js';
import { appendInRandomPieces, faultKey, writeInRandomPieces } from '../../support/faults.js';
import { sha256 } from '../../support/hash.js';

process.env.AWS_ACCESS_KEY_ID ??= 'AKIDTASKLOGTEST';
process.env.AWS_SECRET_ACCESS_KEY ??= 'tasklog-test-secret';

const GROUP = '/airflow/faults';
const LINES = 100_000;

/** `count` lines with multi-byte characters, CRLF now and then and a few long lines. */
function makeLog(count: number, seed: number): Buffer {
  const rand = prng(seed);
  const words = ['INFO', 'task', 'é', '€', '𝄞', 'data', 'Привет', '\t', 'ok'];
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const long = rand() < 0.0005;
    const n = long ? 20_000 : 1 + Math.floor(rand() * 12);
    const parts = [`[${i}]`];
    for (let w = 0; w < n; w++) parts.push(words[Math.floor(rand() * words.length)]!);
    lines.push(parts.join(' ') + (rand() < 0.05 ? '\r\n' : '\n'));
  }
  return Buffer.from(lines.join(''));
}

/** How the writers append: random pieces, a flush after about a third of them. */
const PIECES = { maxPieceBytes: 150_000, flushChance: 0.3 };

describe('CloudWatch Logs with 20% of requests failing (throttling, 5xx, resets before and after the work)', () => {
  let emulator: CloudWatchEmulator;
  let store: CloudWatchStore;

  beforeAll(async () => {
    emulator = await startCloudWatchEmulator();
    // Small batches, so the log takes a few hundred requests and many of them fail.
    store = cloudWatchStoreOn(emulator, GROUP, 12, {
      retryBaseDelayMs: 5,
      maxRetryDelayMs: 50,
      maxPieceBytes: 8 * 1024,
      maxBatchBytes: 64 * 1024,
    });
    emulator.faults.failRandomly({
      probability: 0.2,
      seed: 21,
      kinds: ['429', '503', '500', 'reset', 'resetAfterCommit'],
    });
  });

  afterAll(async () => {
    await store?.close();
    await emulator?.close();
  });

  /** Raw events of the stream holding the same record (same message) more than once. */
  function rawDuplicates(stream: string): { events: number; duplicates: number } {
    const events = emulator.events(GROUP, stream);
    const distinct = new Set(events.map((e) => e.message));
    return { events: events.length, duplicates: events.length - distinct.size };
  }

  it(`ships ${LINES.toLocaleString('en')} lines byte-identical, each line once through the reader`, async () => {
    const key = faultKey({ taskId: 'writer' });
    const log = makeLog(LINES, 5);
    await writeInRandomPieces(store, key, log, { ...PIECES, seed: 6 });

    const back = await readAll(store, key);
    expect(back.length).toBe(log.length);
    expect(back.equals(log)).toBe(true);
    const lines = back.toString('utf8').split('\n');
    expect(lines.length - 1).toBe(LINES);
    expect(new Set(lines.map((l) => l.slice(0, l.indexOf(' ')))).size).toBe(LINES + 1);

    const failed = emulator.requestLog.filter((r) => r.status !== 200);
    const lostPuts = failed.filter((r) => r.operation === 'PutLogEvents' && r.status === 0);
    expect(failed.length).toBeGreaterThan(20);
    expect(lostPuts.length).toBeGreaterThan(0);
    // PutLogEvents is retried by tasklog, which reads the stream's newest event after a lost
    // answer before resending, so the raw stream holds no event twice either: plain events carry
    // no offset, and a reader (Airflow's or tasklog's) counts them from the head.
    const raw = rawDuplicates(store.streamName(key));
    console.info(
      `cloudwatch faults: ${failed.length} of ${emulator.requestLog.length} requests failed (${lostPuts.length} PutLogEvents without an answer); the raw stream holds ${raw.events} events, ${raw.duplicates} of them duplicates`,
    );
    expect(raw.duplicates).toBe(0);
    // What Airflow shows: each line that fits one event as its text, once, in order; only the
    // few lines a flush cut in two are pieces (a line's tail is plain too, but it does not start
    // with the line's "[n]").
    const plain = emulator
      .events(GROUP, store.streamName(key))
      .map((e) => e.message)
      .filter((m) => m.startsWith('['));
    const shown = new Set(plain);
    const short = lines.slice(0, -1).filter((l) => Buffer.byteLength(l) <= 8 * 1024);
    expect(plain).toEqual(short.filter((l) => shown.has(l)));
    expect(short.length - plain.length).toBeLessThan(100);
  });

  it('resumes after a writer died halfway and ends byte-identical', async () => {
    const key = faultKey({ taskId: 'resumed' });
    const log = makeLog(20_000, 7);
    const crashed = await store.openWriter(key);
    await appendInRandomPieces(crashed, log, {
      ...PIECES,
      seed: 8,
      to: Math.floor(log.length / 2),
    });
    await crashed.flush();
    await crashed.append(
      log.subarray(Math.floor(log.length / 2), Math.floor(log.length / 2) + 999),
    );
    // The worker dies: no flush, no finish.

    const resumed = await store.openWriter(key);
    expect(resumed.committedOffset).toBe(Math.floor(log.length / 2));
    await appendInRandomPieces(resumed, log, { ...PIECES, seed: 9, from: resumed.committedOffset });
    await resumed.finish({ size: log.length, sha256: sha256(log) });
    expect(await digestStored(store, key)).toEqual({ size: log.length, sha256: sha256(log) });
    expect(rawDuplicates(store.streamName(key)).duplicates).toBe(0);
  });
});
