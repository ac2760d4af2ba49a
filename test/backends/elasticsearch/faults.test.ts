import { prng } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestStored } from '../../../packages/core/src/hashing.js';
import { ElasticsearchStore } from '../../../packages/core/src/stores/elasticsearch/store.js';
import {
  type ElasticsearchEmulator,
  startElasticsearchEmulator,
} from '../../emulators/elasticsearch/index.js';
import { faultKey, writeInRandomPieces } from '../../support/faults.js';
import { sha256 } from '../../support/hash.js';

/** `lines` seeded log lines: multi-byte text, empty lines, CRLF, a few long ones. */
function logOfLines(lines: number, seed: number): Buffer {
  const rand = prng(seed);
  const words = ['INFO', 'task', 'é', '€', '日本語', '𝄞', 'data', 'ok', '"quoted"', '\\', '\t'];
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const r = rand();
    if (r < 0.05) {
      out.push('\n');
      continue;
    }
    const n = r > 0.999 ? 3000 : 1 + Math.floor(rand() * 12);
    const parts = [`[${i}]`];
    for (let w = 0; w < n; w++) parts.push(words[Math.floor(rand() * words.length)]!);
    out.push(`${parts.join(' ')}${rand() < 0.05 ? '\r\n' : '\n'}`);
  }
  return Buffer.from(out.join(''));
}

describe('Elasticsearch with 20% of requests failing and 20% of bulk items rejected', () => {
  let emulator: ElasticsearchEmulator;
  let store: ElasticsearchStore;

  beforeAll(async () => {
    emulator = await startElasticsearchEmulator({ refreshIntervalMs: 50 });
    store = ElasticsearchStore.fromUrl(
      `${emulator.url.replace('http://', 'elasticsearch+http://')}/faults`,
      { elasticsearch: { max_retries: 40 } },
      { bulkBytes: 256 * 1024, retryBaseDelayMs: 2, retryMaxDelayMs: 40 },
    );
  });

  afterAll(async () => {
    await store?.close();
    await emulator?.close();
  });

  it('ships 100,000 lines byte-identical and stores each line exactly once', async () => {
    const key = faultKey({ taskId: 'lines' });
    const log = logOfLines(100_000, 21);
    emulator.faults.failRandomly({
      probability: 0.2,
      seed: 7,
      kinds: ['429', '503', '500', 'reset', 'resetAfterCommit'],
    });
    emulator.failBulkItems({ probability: 0.2, seed: 8 });

    await writeInRandomPieces(store, key, log, {
      seed: 9,
      maxPieceBytes: 200_000,
      flushChance: 0.2,
    });
    expect(await digestStored(store, key)).toEqual({ size: log.length, sha256: sha256(log) });
    expect(await store.stat(key)).toMatchObject({ size: log.length, complete: true });

    emulator.faults.clear();
    emulator.failBulkItems(undefined);
    const failed = emulator.requestLog.filter((r) => r.status >= 429 || r.status === 0);
    const rejectedItems = emulator.requestLog.reduce((n, r) => n + (r.rejectedItems ?? 0), 0);
    expect(failed.length).toBeGreaterThan(0);
    expect(rejectedItems).toBeGreaterThan(0);

    // The raw index: deterministic ids make a retried (or applied-then-reset) bulk overwrite, so
    // every byte offset is held by exactly one document and together they tile the log.
    const docs = emulator
      .documents('faults')
      .map((d) => d.source as { offset: number; length: number; start?: boolean; end?: boolean })
      .filter((d) => !d.start && !d.end)
      .sort((a, b) => a.offset - b.offset);
    const offsets = new Set(docs.map((d) => d.offset));
    expect(offsets.size).toBe(docs.length);
    let next = 0;
    for (const d of docs) {
      expect(d.offset - 1).toBe(next);
      next += d.length;
    }
    expect(next).toBe(log.length);
  });
});
