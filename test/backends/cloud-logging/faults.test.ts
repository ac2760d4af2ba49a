import { prng, readAll } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudLoggingStore } from '../../../packages/core/src/stores/cloud-logging/store.js';
import {
  type CloudLoggingEmulator,
  startCloudLoggingEmulator,
} from '../../emulators/cloud-logging/index.js';
import { faultKey, writeInRandomPieces } from '../../support/faults.js';
import { sha256 } from '../../support/hash.js';

process.env.METADATA_SERVER_DETECTION = 'none';

const PROJECT = 'faults';

/** `lines` lines of varied length and content: ASCII, multi-byte, CRLF, empty, long. */
function randomLines(lines: number, seed: number): Buffer {
  const rand = prng(seed);
  const words = ['INFO', 'é', '€', '𝄞', 'data', '\r', 'task', 'y'.repeat(300)];
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const n = Math.floor(rand() * 8);
    const parts = [`${i}`];
    for (let j = 0; j < n; j++) parts.push(words[Math.floor(rand() * words.length)]!);
    out.push(parts.join(' '));
  }
  return Buffer.from(`${out.join('\n')}\n`);
}

describe('Cloud Logging with 20% of calls failing (UNAVAILABLE, INTERNAL, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, lost answers)', () => {
  let emulator: CloudLoggingEmulator;
  let store: CloudLoggingStore;

  beforeAll(async () => {
    emulator = await startCloudLoggingEmulator();
    store = new CloudLoggingStore({
      logName: 'airflow',
      projectId: PROJECT,
      apiEndpoint: `http://${emulator.url}`,
      maxAttempts: 12,
      maxRetryDelayMs: 20,
    });
    emulator.faults.failRandomly({
      probability: 0.2,
      seed: 17,
      kinds: ['503', '500', '429', '408', 'reset', 'resetAfterCommit'],
    });
  });

  afterAll(async () => {
    await store?.close();
    await emulator?.close();
  });

  it('ships 100,000 lines byte-identical, each line once through the reader', async () => {
    const key = faultKey({ taskId: 'writer' });
    const log = randomLines(100_000, 5);
    await writeInRandomPieces(store, key, log, {
      seed: 6,
      maxPieceBytes: 200_000,
      flushChance: 0.3,
    });

    const back = await readAll(store, key);
    expect(back.length).toBe(log.length);
    expect(sha256(back)).toBe(sha256(log));

    const faulted = emulator.requestLog.filter((r) => r.fault !== undefined);
    expect(
      faulted.some((r) => r.fault === 'resetAfterCommit' && r.method === 'WriteLogEntries'),
    ).toBe(true);
    expect(faulted.length).toBeGreaterThan(10);

    // What the service holds: deterministic insertIds and unchanged timestamps on every resend
    // let it drop the copies that a lost answer made the writer send again.
    emulator.faults.clear();
    const raw = emulator.store.all(`projects/${PROJECT}/logs/airflow`);
    const records = raw.filter(
      (e) => e.labels.offset !== undefined && e.labels.tasklog_end === undefined,
    );
    const distinct = new Set(records.map((e) => `${e.labels.offset}+${e.labels.length}`));
    const rawDuplicates = records.length - distinct.size;
    console.info(
      `stackdriver faults: ${emulator.requestLog.length} calls, ${faulted.length} faulted, ` +
        `${records.length} records stored, ${rawDuplicates} raw duplicates`,
    );
    expect(rawDuplicates).toBe(0);
  });
});
