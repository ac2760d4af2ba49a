import { Client } from '@elastic/elasticsearch';
import type { AttemptKey } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ElasticsearchStore } from '../../../packages/core/src/stores/elasticsearch/store.js';
import {
  type ElasticsearchEmulator,
  startElasticsearchEmulator,
} from '../../emulators/elasticsearch/index.js';
import { attemptKeys } from '../../support/attempts.js';
import { sha256 } from '../../support/hash.js';

/**
 * Both directions against Airflow's Elasticsearch task handler (apache-airflow-providers-
 * elasticsearch, `ElasticsearchTaskHandler` / `ElasticsearchRemoteLogIO`):
 * - documents shaped the way Airflow writes them (`write_to_es`, or Filebeat shipping the
 *   JSON lines of `write_stdout`) are read by tasklog;
 * - a log tasklog shipped is found by the query Airflow's `_es_read` sends.
 */

const RUN_ID = 'manual__2024-05-01T10:00:00.123456+00:00';
/** The attempts of run RUN_ID: `key({ dagId: 'a3', mapIndex: 4, tryNumber: 2 })`. */
const key = attemptKeys({ dagId: 'a2', runId: RUN_ID, taskId: 'extract' });
/** Airflow's default `[elasticsearch] index_patterns`. */
const AIRFLOW_INDEX_PATTERNS = '_all';

/** `_render_log_id` with the default `log_id_template`. */
function airflowLogId(k: AttemptKey): string {
  return `${k.dagId}-${k.taskId}-${k.runId}-${k.mapIndex}-${k.tryNumber}`;
}

describe('Airflow’s Elasticsearch task handler and tasklog', () => {
  let emulator: ElasticsearchEmulator;
  let client: Client;
  let store: ElasticsearchStore;

  beforeAll(async () => {
    emulator = await startElasticsearchEmulator({ refreshIntervalMs: 20 });
    client = new Client({ node: emulator.url });
    // Airflow's default target_index; created by dynamic mapping from Airflow's documents.
    store = ElasticsearchStore.fromUrl(
      `${emulator.url.replace('http://', 'elasticsearch+http://')}/airflow-logs`,
      {},
      { pageSize: 100 },
    );
  });
  afterAll(async () => {
    await store?.close();
    await client?.close();
    await emulator?.close();
  });

  describe('documents Airflow wrote', () => {
    /**
     * `ElasticsearchRemoteLogIO._parse_raw_log` + `_write_to_es`: each JSON line of the local
     * log plus `log_id` and an `offset` counter from 1, bulk-indexed without ids; the handler's
     * close() emits the end mark as the last record.
     */
    async function indexLikeWriteToEs(
      k: AttemptKey,
      messages: string[],
      field: 'message' | 'event',
      finished: boolean,
    ): Promise<void> {
      const lines = finished ? [...messages, 'end_of_log'] : messages;
      const operations = lines.flatMap((text, i) => [
        { index: { _index: 'airflow-logs' } },
        {
          asctime: '2024-05-01T10:00:01.000+0000',
          levelname: 'INFO',
          [field]: text,
          dag_id: k.dagId,
          task_id: k.taskId,
          execution_date: '2024_05_01T10_00_00_123456',
          try_number: String(k.tryNumber),
          log_id: airflowLogId(k),
          offset: i + 1,
        },
      ]);
      // Indexed in reverse: the order of the documents in the index must not matter.
      const pairs = [];
      for (let i = 0; i < operations.length; i += 2)
        pairs.unshift(operations[i], operations[i + 1]);
      await client.bulk({ operations: pairs, refresh: true });
    }

    it('reads a finished Airflow 2 log (message field) as Airflow joins it, without the end mark', async () => {
      const k = key();
      const messages = Array.from({ length: 250 }, (_, i) => `line ${i} é`);
      await indexLikeWriteToEs(k, messages, 'message', true);
      const text = messages.join('\n');
      expect((await readAll(store, k)).toString()).toBe(text);
      expect(await store.stat(k)).toMatchObject({ size: Buffer.byteLength(text), complete: true });
    });

    it('reads an Airflow 3 log from the `event` field', async () => {
      const k = key({ dagId: 'a3', mapIndex: 4, tryNumber: 2 });
      await indexLikeWriteToEs(k, ['first', 'second'], 'event', true);
      expect((await readAll(store, k)).toString()).toBe('first\nsecond');
    });

    it('reads a running Airflow log (no end mark yet) from a byte offset', async () => {
      const k = key({ taskId: 'running' });
      await indexLikeWriteToEs(k, ['alpha', 'beta', 'gamma'], 'message', false);
      expect(await store.stat(k)).toMatchObject({ size: 16, complete: false });
      expect((await readAll(store, k, { offset: 8 })).toString()).toBe('ta\ngamma');
    });

    it('orders Filebeat-shipped lines by their nanosecond offsets and ignores other attempts', async () => {
      const k = key({ dagId: 'fb', taskId: 'stdout' });
      const logId = airflowLogId(k);
      // `emit()` stamps offset = time.time() * 1e9; Filebeat adds `host` as an object.
      const base = 1_755_011_166_339_518_000;
      const docs = ['one', 'two', 'three', 'end_of_log'].map((message, i) => ({
        message,
        log_id: logId,
        offset: base + i * 1_000_000,
        host: { name: 'worker-1' },
      }));
      // A longer log_id that contains this one as a phrase (what match_phrase would also hit).
      docs.push({ message: 'other', log_id: `x-${logId}`, offset: base + 1, host: { name: 'w' } });
      await client.bulk({
        index: 'filebeat-airflow',
        operations: docs.reverse().flatMap((d) => [{ index: {} }, d]),
        refresh: true,
      });
      const filebeat = ElasticsearchStore.fromUrl(
        `${emulator.url.replace('http://', 'elasticsearch+http://')}/filebeat-airflow`,
        {},
        { pageSize: 2 },
      );
      try {
        expect((await readAll(filebeat, k)).toString()).toBe('one\ntwo\nthree');
      } finally {
        await filebeat.close();
      }
    });
    it('finds a log_id too long for the keyword sub-field through match_phrase, exactly', async () => {
      // Dynamic mapping indexes `log_id.keyword` only up to 256 characters.
      const k = key({ dagId: 'd'.repeat(200), taskId: 't'.repeat(100) });
      const logId = airflowLogId(k);
      const docs = [
        { message: 'mine', log_id: logId, offset: 1 },
        { message: 'end_of_log', log_id: logId, offset: 2 },
        { message: 'not mine', log_id: `x-${logId}`, offset: 1 },
      ];
      await client.bulk({
        index: 'airflow-logs',
        operations: docs.flatMap((d) => [{ index: {} }, d]),
        refresh: true,
      });
      expect((await readAll(store, k)).toString()).toBe('mine');
      expect(await store.stat(k)).toMatchObject({ size: 4, complete: true });
      await store.delete(k);
      expect(await store.stat(k)).toBeUndefined();
      const left = await client.count({
        index: 'airflow-logs',
        query: { match_phrase: { message: 'not mine' } },
      });
      expect(left.count).toBe(1);
    });
  });

  describe('a log tasklog shipped', () => {
    /** `ElasticsearchTaskHandler._read` / `_es_read`, page after page, as the UI polls it. */
    async function readLikeAirflow(logId: string): Promise<{ messages: string[]; ended: boolean }> {
      const messages: string[] = [];
      let offset = 0;
      for (let round = 0; round < 100; round++) {
        const query = {
          bool: {
            filter: [{ range: { offset: { gt: offset } } }],
            must: [{ match_phrase: { log_id: logId } }],
          },
        };
        const count = await client.count({ index: AIRFLOW_INDEX_PATTERNS, query });
        if (count.count === 0) return { messages, ended: false };
        const res = await client.search<{ message: string; offset: number }>({
          index: AIRFLOW_INDEX_PATTERNS,
          query,
          sort: ['offset'],
          size: 1000,
          from: 0,
        });
        const hits = res.hits.hits.map((h) => h._source!);
        offset = hits.at(-1)!.offset;
        const ended = hits.at(-1)!.message === 'end_of_log';
        // concat_logs drops the end mark when it is the last hit.
        messages.push(...(ended ? hits.slice(0, -1) : hits).map((h) => h.message));
        if (ended) return { messages, ended };
      }
      throw new Error('Airflow would still be reading');
    }

    it('is found by Airflow’s query, page by page, and its messages are the log’s lines', async () => {
      const k = key({ dagId: 'tl', taskId: 'ship', mapIndex: 0, tryNumber: 3 });
      const lines = Array.from({ length: 2500 }, (_, i) => (i % 97 === 0 ? '' : `[${i}] ok € 𝄞`));
      const log = Buffer.from(`${lines.join('\n')}\n`);
      const writer = await store.openWriter(k);
      await writer.append(log);
      await writer.finish({ size: log.length, sha256: sha256(log) });

      expect(store.logId(k)).toBe(airflowLogId(k));
      const { messages, ended } = await readLikeAirflow(airflowLogId(k));
      expect(ended).toBe(true);
      expect(messages.join('\n')).toBe(lines.join('\n'));
    });

    it('shows Airflow the first line although its byte offset is 0', async () => {
      const k = key({ dagId: 'tl', taskId: 'first_line' });
      const writer = await store.openWriter(k);
      await writer.append(Buffer.from('very first\nsecond\n'));
      await writer.flush();
      const { messages, ended } = await readLikeAirflow(airflowLogId(k));
      expect(ended).toBe(false);
      expect(messages).toEqual(['very first', 'second']);
      await writer.abort();
    });
  });
});
