import { Client } from '@elastic/elasticsearch';
import { BackendUnavailableError, InvalidInputError } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AIRFLOW_LOG_ID_TEMPLATE,
  ElasticsearchStore,
  type ElasticsearchStoreOptions,
} from '../../../packages/core/src/stores/elasticsearch/store.js';
import {
  type ElasticsearchEmulator,
  startElasticsearchEmulator,
} from '../../emulators/elasticsearch/index.js';
import { attemptKeys } from '../../support/attempts.js';
import { sha256 } from '../../support/hash.js';
import { writeLog } from '../../support/stores.js';

const RUN_ID = 'scheduled__2024-01-01T00:00:00+00:00';

interface Doc {
  log_id: string;
  offset: number;
  length: number;
  message?: string;
  event?: string;
  crlf?: boolean;
  head_skip?: number;
  tail_base64?: string;
  raw_text?: string;
  raw_base64?: string;
  host?: string;
  '@timestamp': string;
  dag_id: string;
  task_id: string;
  run_id: string;
  map_index: number;
  try_number: number;
  start?: boolean;
  end?: boolean;
  sha256?: string;
}

describe('ElasticsearchStore', () => {
  let emulator: ElasticsearchEmulator;
  let n = 0;

  beforeAll(async () => {
    emulator = await startElasticsearchEmulator({ refreshIntervalMs: 20 });
  });
  afterAll(async () => {
    await emulator?.close();
  });

  function open(overrides: Partial<ElasticsearchStoreOptions> = {}, index = `store-${n++}`) {
    return ElasticsearchStore.fromUrl(
      `${emulator.url.replace('http://', 'elasticsearch+http://')}/${index}`,
      {},
      { retryBaseDelayMs: 2, ...overrides },
    );
  }
  const key = attemptKeys({ dagId: 'etl', runId: RUN_ID, taskId: 'load' });
  /** The attempt's documents straight from the emulator, in offset order. */
  const docsOf = (store: ElasticsearchStore) =>
    emulator
      .documents(store.index)
      .map((d) => d.source as unknown as Doc)
      .sort((a, b) => a.offset - b.offset);

  describe('documents', () => {
    it('writes one document per line with Airflow’s fields, offset counting from 1', async () => {
      const store = open({ hostName: 'worker-7' });
      await writeLog(store, key({ mapIndex: 2 }), Buffer.from('first\nsecond é\n'));
      const [start, first, second, end] = docsOf(store);
      expect(start).toMatchObject({ offset: 0, length: 0, start: true });
      expect(first).toMatchObject({
        log_id: `etl-load-${RUN_ID}-2-1`,
        offset: 1,
        length: 6,
        message: 'first',
        host: 'worker-7',
        dag_id: 'etl',
        task_id: 'load',
        run_id: RUN_ID,
        map_index: 2,
        try_number: 1,
      });
      expect(second).toMatchObject({ offset: 7, length: 10, message: 'second é' });
      expect(end).toMatchObject({
        offset: 17,
        length: 0,
        message: 'end_of_log',
        end: true,
        sha256: sha256(Buffer.from('first\nsecond é\n')),
      });
    });

    it('gives the documents timestamps that never go back along the log', async () => {
      const store = open();
      await writeLog(store, key(), Buffer.from('a\nb\nc\nd\n'));
      const times = docsOf(store).map((d) => Date.parse(d['@timestamp']));
      expect([...times].sort((a, b) => a - b)).toEqual(times);
    });

    it('shows bytes that are not UTF-8 as U+FFFD and keeps them exact in raw_base64', async () => {
      const store = open();
      const log = Buffer.concat([
        Buffer.from('ok\n'),
        Buffer.from([0xff, 0xfe, 0x41, 0x0a]),
        Buffer.from('é'),
      ]);
      await writeLog(store, key(), log);
      expect(docsOf(store)[2]).toMatchObject({
        message: '\ufffd\ufffdA',
        raw_base64: '//5B',
        length: 4,
      });
      expect((await readAll(store, key())).equals(log)).toBe(true);
    });

    it('keeps a line of 1 MiB in one document (up to maxLineBytes, 16 MiB by default)', async () => {
      const store = open();
      expect(store.options.maxLineBytes).toBe(16 * 1024 * 1024);
      const line = `${'x€'.repeat(256 * 1024)}\n`;
      await writeLog(store, key(), Buffer.from(`a\n${line}b\n`));
      const lines = docsOf(store).filter((d) => !d.start && !d.end);
      expect(lines.map((d) => d.length)).toEqual([2, Buffer.byteLength(line), 2]);
      expect(lines[1]!.message).toBe(line.slice(0, -1));
    });

    it('refuses a maxLineBytes a request could not carry', () => {
      expect(() => open({ maxLineBytes: 16 * 1024 * 1024 + 1 })).toThrow(/max_line_bytes/);
    });

    it('splits a line longer than maxLineBytes into several documents and joins them on read', async () => {
      const store = open({ maxLineBytes: 1000 });
      const line = `${'€'.repeat(1200)}\n`; // 3,601 bytes, never cut inside a character
      await writeLog(store, key(), Buffer.from(line));
      const pieces = docsOf(store).filter((d) => !d.start && !d.end);
      expect(pieces.map((d) => d.length)).toEqual([999, 999, 999, 604]);
      // Each piece shows its own characters; only offsets and lengths join them.
      expect(pieces.map((d) => d.message).join('')).toBe(line.slice(0, -1));
      expect(pieces.every((d) => d.raw_base64 === undefined)).toBe(true);
      expect((await readAll(store, key())).toString()).toBe(line);
      expect((await readAll(store, key(), { offset: 1500 })).toString()).toBe(
        Buffer.from(line).subarray(1500).toString(),
      );
    });

    it('round-trips empty lines, CRLF, a last line without newline and multi-byte text', async () => {
      const store = open();
      const log = Buffer.from('\n\nwin\r\n\r\n日本語 𝄞\nno newline é');
      await writeLog(store, key(), log);
      expect((await readAll(store, key())).equals(log)).toBe(true);
      const lines = docsOf(store).filter((d) => !d.start && !d.end);
      // What Airflow shows: the lines without their CR; `crlf` keeps it.
      expect(lines.map((d) => d.message)).toEqual(['', '', 'win', '', '日本語 𝄞', 'no newline é']);
      expect(lines.map((d) => d.crlf ?? false)).toEqual([false, false, true, true, false, false]);
    });

    it('shows a character a flush cut in two whole, in the document where it ends', async () => {
      const store = open();
      const log = Buffer.from('ab€cd\r\nnext 𝄞\n');
      const writer = await store.openWriter(key());
      // Cut inside € (after its first byte), between CR and LF, and inside 𝄞 (after 2 bytes).
      for (const [from, to] of [
        [0, 3],
        [3, 8],
        [8, 9],
        [9, 16],
        [16, log.length],
      ] as const) {
        await writer.append(log.subarray(from, to));
        await writer.flush();
      }
      const lines = docsOf(store).filter((d) => !d.start);
      expect(lines.map((d) => d.message)).toEqual(['ab', '€cd', '', 'next ', '𝄞']);
      expect(lines[0]).toMatchObject({
        length: 3,
        tail_base64: Buffer.from([0xe2]).toString('base64'),
      });
      expect(lines[1]).toMatchObject({ length: 5, head_skip: 1, tail_base64: 'DQ==' });
      expect(lines[2]).toMatchObject({ length: 1 });
      expect((await readAll(store, key())).equals(log)).toBe(true);
      expect((await readAll(store, key(), { offset: 4 })).equals(log.subarray(4))).toBe(true);
      // A writer resumed after the cut shows the character whole too.
      await writer.abort();
      const resumed = await store.openWriter(key());
      expect(resumed.committedOffset).toBe(log.length);
      await resumed.abort();
    });

    it('resumes a writer whose last flush cut a character and still shows it whole', async () => {
      const store = open();
      const log = Buffer.from('x 日本 y\n');
      const first = await store.openWriter(key());
      await first.append(log.subarray(0, 4)); // 'x ' and the first 2 bytes of 日
      await first.flush();
      await first.abort();
      const second = await store.openWriter(key());
      expect(second.committedOffset).toBe(4);
      await second.append(log.subarray(4));
      await second.finish({ size: log.length, sha256: sha256(log) });
      const lines = docsOf(store).filter((d) => !d.start && !d.end);
      expect(lines.map((d) => d.message)).toEqual(['x ', '日本 y']);
      expect((await readAll(store, key())).equals(log)).toBe(true);
    });

    it('writes an Airflow 3 JSON line as its event, level and timestamp, and keeps the line exact', async () => {
      const store = open({ messageField: 'event' });
      const json =
        '{"timestamp":"2025-08-12T15:05:58.123456Z","level":"info","event":"Task started","logger":"airflow.task"}';
      const log = Buffer.from(`${json}\nplain text\n{"event": 5}\n`);
      await writeLog(store, key(), log);
      const lines = docsOf(store).filter((d) => !d.start && !d.end) as unknown as Record<
        string,
        unknown
      >[];
      expect(lines[0]).toMatchObject({
        event: 'Task started',
        level: 'info',
        logger: 'airflow.task',
        timestamp: '2025-08-12T15:05:58.123456Z',
        raw_text: json,
      });
      expect(lines[1]).toMatchObject({ event: 'plain text' });
      expect(lines[1]!.raw_text).toBeUndefined();
      expect(lines[2]).toMatchObject({ event: '{"event": 5}' });
      expect((await readAll(store, key())).equals(log)).toBe(true);
    });

    it('reads documents of earlier tasklog versions (CR in the text, encoding: base64)', async () => {
      const store = open();
      const client = new Client({ node: emulator.url });
      const logId = store.logId(key());
      const docs = [
        { offset: 0, length: 0, start: true },
        { offset: 1, length: 5, message: 'win\r' },
        { offset: 6, length: 3, message: '//5B', encoding: 'base64' },
      ].map((d) => ({ log_id: logId, ...d }));
      await client.bulk({
        index: store.index,
        operations: docs.flatMap((d) => [{ index: {} }, d]),
        refresh: true,
      });
      await client.close();
      const want = Buffer.concat([Buffer.from('win\r\n'), Buffer.from([0xff, 0xfe, 0x41])]);
      expect((await readAll(store, key())).equals(want)).toBe(true);
    });

    it('writes the text to `event` for Airflow 3, with a custom end mark and log_id template', async () => {
      const store = open({
        messageField: 'event',
        endOfLogMark: ' done \n',
        logIdTemplate: '{{x}}{dag_id}/{task_id}/{run_id}/{map_index}/{try_number}',
      });
      await writeLog(store, key(), Buffer.from('hello\n'));
      const docs = docsOf(store);
      expect(docs[1]).toMatchObject({ log_id: `{x}etl/load/${RUN_ID}/-1/1`, event: 'hello' });
      expect(docs[1]!.message).toBeUndefined();
      expect(docs[2]).toMatchObject({ event: 'done', end: true });
      expect((await readAll(store, key())).toString()).toBe('hello\n');
    });

    it('refuses a log_id template that leaves out an attempt field', () => {
      expect(() => open({ logIdTemplate: '{dag_id}-{task_id}-{try_number}' })).toThrow(
        InvalidInputError,
      );
      expect(() => open({ logIdTemplate: `${AIRFLOW_LOG_ID_TEMPLATE}-{logical_date}` })).toThrow(
        /logical_date/,
      );
    });
  });

  describe('writing', () => {
    it('sends a full bulk from append, within bulkBytes, and retries only the rejected items', async () => {
      const store = open({ bulkBytes: 16 * 1024 });
      const log = Buffer.from(Array.from({ length: 2000 }, (_, i) => `line ${i}\n`).join(''));
      emulator.failBulkItems({ probability: 0.3, seed: 5 });
      const before = emulator.requestLog.length;
      try {
        await writeLog(store, key(), log);
      } finally {
        emulator.failBulkItems(undefined);
      }
      const bulks = emulator.requestLog.slice(before).filter((r) => r.path.includes('_bulk'));
      expect(bulks.length).toBeGreaterThan(5);
      expect(bulks.some((r) => (r.rejectedItems ?? 0) > 0)).toBe(true);
      expect((await readAll(store, key())).equals(log)).toBe(true);
      expect(docsOf(store).length).toBe(2000 + 2);
    });

    it('throws InvalidInputError naming the offset of a document the index mapping refuses', async () => {
      const index = `mapped-${n++}`;
      const client = new Client({ node: emulator.url });
      await client.indices.create({
        index,
        mappings: { properties: { message: { type: 'long' } } },
      });
      await client.close();
      const store = open({}, index);
      const writer = await store.openWriter(key());
      await writer.append(Buffer.from('12\nnot a number\n'));
      const err = await writer.flush().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as Error).message).toMatch(/byte offset 3\b.*document_parsing_exception/);
    });

    it('makes the end record visible as soon as finish resolves', async () => {
      const slow = await startElasticsearchEmulator({ refreshIntervalMs: 400 });
      const store = ElasticsearchStore.fromUrl(`elasticsearch+${slow.url}/slow`, {});
      try {
        await writeLog(store, key(), Buffer.from('x\n'));
        expect(await store.stat(key())).toMatchObject({ size: 2, complete: true });
      } finally {
        await store.close();
        await slow.close();
      }
    });

    it('resumes after the documents following a gap a crashed writer left behind', async () => {
      const store = open({ bulkBytes: 1024 });
      const log = Buffer.from(Array.from({ length: 200 }, (_, i) => `row ${i}\n`).join(''));
      const crashed = await store.openWriter(key());
      await crashed.append(log);
      await crashed.flush();
      // Lose line 10 (bytes 60-65), as a crash amid a partly rejected bulk would.
      const client = new Client({ node: emulator.url });
      const victim = emulator
        .documents(store.index)
        .find((d) => (d.source as unknown as Doc).offset === 61)!;
      await client.delete({ index: store.index, id: victim.id, refresh: true });
      await client.close();

      const resumed = await store.openWriter(key());
      expect(resumed.committedOffset).toBe(60);
      expect(docsOf(store).filter((d) => d.offset > 61)).toEqual([]);
      await resumed.append(log.subarray(60));
      await resumed.finish({ size: log.length, sha256: sha256(log) });
      expect((await readAll(store, key())).equals(log)).toBe(true);
    });
  });

  describe('reading', () => {
    it('reports a running log’s size as the end of its highest document', async () => {
      const store = open();
      const writer = await store.openWriter(key());
      expect(await store.stat(key())).toMatchObject({ size: 0, complete: false });
      await writer.append(Buffer.from('abc\nde'));
      await writer.flush();
      expect(await store.stat(key())).toMatchObject({ size: 6, complete: false });
      await writer.abort();
    });

    it('pages with search_after through logs longer than one page', async () => {
      const store = open({ pageSize: 7 });
      const log = Buffer.from(Array.from({ length: 50 }, (_, i) => `l${i}\n`).join(''));
      await writeLog(store, key(), log);
      expect((await readAll(store, key())).equals(log)).toBe(true);
      expect((await readAll(store, key(), { offset: 100 })).equals(log.subarray(100))).toBe(true);
    });

    it('reads long lines in pages bounded by log bytes, not only by document count', async () => {
      const store = open({ pageWindowBytes: 10 * 1024 });
      const log = Buffer.from(
        Array.from({ length: 60 }, (_, i) => `${String(i).padEnd(1023, '.')}\n`).join(''),
      );
      await writeLog(store, key(), log);
      const before = emulator.requestLog.length;
      expect((await readAll(store, key())).equals(log)).toBe(true);
      const searches = emulator.requestLog.slice(before).filter((r) => r.path.includes('_search'));
      // 60 KiB in windows of 10 KiB: 6 windows (and a query for where each next one starts),
      // although one page of 1000 could hold all 62 documents.
      expect(searches.length).toBeGreaterThanOrEqual(6);
      expect((await readAll(store, key(), { offset: 30_000 })).equals(log.subarray(30_000))).toBe(
        true,
      );
    });

    it('lists attempts across several pages of the composite aggregation', async () => {
      const store = open();
      const client = new Client({ node: emulator.url });
      const operations = [];
      for (let i = 0; i < 1005; i++) {
        operations.push(
          { index: {} },
          {
            log_id: `x-${i}`,
            offset: 0,
            length: 0,
            start: true,
            dag_id: 'many',
            run_id: 'r',
            task_id: `t${i}`,
            map_index: -1,
            try_number: 1,
          },
        );
      }
      await store.openWriter(key({ dagId: 'other' })).then((w) => w.abort());
      await client.bulk({ index: store.index, operations, refresh: true });
      await client.close();
      const listed: string[] = [];
      for await (const k of store.list({ dagId: 'many' })) listed.push(k.taskId);
      expect(listed.length).toBe(1005);
      expect(new Set(listed).size).toBe(1005);
    });
  });

  describe('connecting', () => {
    it('takes credentials from the URL without showing them in `url`', async () => {
      const secured = await startElasticsearchEmulator({
        auth: { username: 'elastic', password: 'p@ss' },
      });
      const store = ElasticsearchStore.fromUrl(
        `elasticsearch+http://elastic:p%40ss@${secured.url.slice('http://'.length)}/secured`,
        {},
      );
      try {
        expect(store.url).toBe(`elasticsearch+${secured.url}/secured`);
        await expect(store.ping()).resolves.toBeUndefined();
      } finally {
        await store.close();
        await secured.close();
      }
    });

    it('uses an API key from the [elasticsearch] settings and fails clearly without it', async () => {
      const secured = await startElasticsearchEmulator({
        auth: { apiKey: 'a2V5OnNlY3JldA==' },
        refreshIntervalMs: 20,
      });
      const url = `elasticsearch+${secured.url}/secured`;
      const good = ElasticsearchStore.fromUrl(url, {
        elasticsearch: { api_key: 'a2V5OnNlY3JldA==' },
      });
      const bad = ElasticsearchStore.fromUrl(url, {});
      try {
        await writeLog(good, key(), Buffer.from('x\n'));
        const err = await bad.stat(key()).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BackendUnavailableError);
        expect((err as Error).message).toMatch(/access denied/);
      } finally {
        await good.close();
        await bad.close();
        await secured.close();
      }
    });

    it('talks to a server without the product header only in OpenSearch mode', async () => {
      const opensearch = await startElasticsearchEmulator({
        productHeader: false,
        refreshIntervalMs: 20,
      });
      const url = `elasticsearch+${opensearch.url}/os`;
      const plain = ElasticsearchStore.fromUrl(url, {}, { maxRetries: 0 });
      const os = ElasticsearchStore.fromUrl(url, { elasticsearch: { distribution: 'opensearch' } });
      try {
        const err = await plain.ping().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BackendUnavailableError);
        expect((err as Error).message).toMatch(/opensearch/);
        await writeLog(os, key(), Buffer.from('from opensearch\n'));
        expect((await readAll(os, key())).toString()).toBe('from opensearch\n');
      } finally {
        await plain.close();
        await os.close();
        await opensearch.close();
      }
    });

    it('refuses URLs without an index', () => {
      expect(() => ElasticsearchStore.fromUrl('elasticsearch+https://host:9200', {})).toThrow(
        InvalidInputError,
      );
      expect(() => ElasticsearchStore.fromUrl('elasticsearch+https://host:9200/Logs', {})).toThrow(
        InvalidInputError,
      );
    });
  });
});
