import { setTimeout as sleep } from 'node:timers/promises';
import { Client, errors } from '@elastic/elasticsearch';
import { describe, expect, it } from 'vitest';
import * as es from './es-emulator-fixture.js';
import { startElasticsearchEmulator } from './index.js';

// Indices, bulk writes, refreshes and faults; searching is in es-emulator-search.test.ts.
describe('Elasticsearch emulator with the official client', () => {
  es.startEmulatorForThisFile();

  describe('cluster and indices', () => {
    it('answers GET / with a 9.x version and the product header', async () => {
      const res = await es.client.info({}, { meta: true });
      expect(res.body.version.number).toMatch(/^9\./);
      expect(res.headers['x-elastic-product']).toBe('Elasticsearch');
    });

    it('makes the client refuse a server without the product header', async () => {
      const foreign = await startElasticsearchEmulator({ productHeader: false });
      const other = new Client({ node: foreign.url, maxRetries: 0 });
      try {
        await expect(other.info()).rejects.toBeInstanceOf(errors.ProductNotSupportedError);
      } finally {
        await other.close();
        await foreign.close();
      }
    });

    it('creates an index with mappings, reports it as existing, and deletes it', async () => {
      const index = es.fresh();
      await es.createIndex(index, { offset: { type: 'long' }, log_id: { type: 'keyword' } });
      expect(await es.client.indices.exists({ index })).toBe(true);
      const mapping = await es.client.indices.getMapping({ index });
      expect(mapping[index]!.mappings.properties).toMatchObject({
        offset: { type: 'long' },
        log_id: { type: 'keyword' },
      });
      await es.client.indices.delete({ index });
      expect(await es.client.indices.exists({ index })).toBe(false);
    });

    it('refuses to create an index twice with resource_already_exists_exception', async () => {
      const index = es.fresh();
      await es.client.indices.create({ index });
      const err = await es.failure(es.client.indices.create({ index }));
      expect(err).toMatchObject({ status: 400, type: 'resource_already_exists_exception' });
    });

    it('answers a missing index with 404 index_not_found_exception', async () => {
      const err = await es.failure(es.client.search({ index: 'no-such-index' }));
      expect(err).toMatchObject({ status: 404, type: 'index_not_found_exception' });
    });

    it('refuses invalid index names', async () => {
      const err = await es.failure(es.client.indices.create({ index: 'Upper' }));
      expect(err).toMatchObject({ status: 400, type: 'invalid_index_name_exception' });
    });

    it('maps new fields dynamically: strings as text with a keyword sub-field, integers as long', async () => {
      const index = es.fresh();
      await es.client.index({ index, id: '1', document: { name: 'a b', n: 3 }, refresh: true });
      const mapping = await es.client.indices.getMapping({ index });
      expect(mapping[index]!.mappings.properties).toMatchObject({
        name: { type: 'text', fields: { keyword: { type: 'keyword', ignore_above: 256 } } },
        n: { type: 'long' },
      });
    });
  });

  describe('bulk', () => {
    it('indexes, creates and deletes with one result per item', async () => {
      const index = es.fresh();
      const res = await es.client.bulk({
        index,
        refresh: true,
        operations: [
          { index: { _id: 'a' } },
          { v: 1 },
          { create: { _id: 'b' } },
          { v: 2 },
          { delete: { _id: 'missing' } },
        ],
      });
      expect(res.errors).toBe(false);
      expect(res.items.map((i) => Object.values(i)[0]!.status)).toEqual([201, 201, 404]);
      expect((await es.client.count({ index })).count).toBe(2);
    });

    it('answers create of an existing id with a per-item 409 version conflict', async () => {
      const index = es.fresh();
      const res = await es.client.bulk({
        index,
        operations: [{ create: { _id: 'a' } }, { v: 1 }, { create: { _id: 'a' } }, { v: 2 }],
      });
      expect(res.errors).toBe(true);
      expect(res.items[1]!.create).toMatchObject({
        status: 409,
        error: { type: 'version_conflict_engine_exception' },
      });
    });

    it('rejects a value that does not fit its field with a per-item 400 parsing error', async () => {
      const index = es.fresh();
      await es.createIndex(index, { offset: { type: 'long' } });
      const res = await es.client.bulk({
        index,
        operations: [
          { index: { _id: 'ok' } },
          { offset: '12' },
          { index: { _id: 'bad' } },
          { offset: 'x' },
        ],
      });
      expect(res.items[0]!.index!.status).toBe(201);
      expect(res.items[1]!.index).toMatchObject({
        status: 400,
        error: { type: 'document_parsing_exception' },
      });
    });

    it('rejects a share of items with 429 inside a 200 answer and stores only the others', async () => {
      const index = es.fresh();
      es.emulator.failBulkItems({ probability: 0.5, seed: 3 });
      const operations = Array.from({ length: 100 }, (_, i) => [
        { index: { _id: `d${i}` } },
        { i },
      ]).flat();
      const res = await es.client.bulk({ index, refresh: true, operations });
      const rejected = res.items.filter((i) => i.index!.status === 429);
      expect(res.errors).toBe(true);
      expect(rejected.length).toBeGreaterThan(20);
      expect(rejected[0]!.index!.error!.type).toBe('es_rejected_execution_exception');
      expect((await es.client.count({ index })).count).toBe(100 - rejected.length);
    });

    it('trims the answer to filter_path', async () => {
      const index = es.fresh();
      const res = await es.client.bulk({
        index,
        operations: [{ index: { _id: 'a' } }, { v: 1 }],
        filter_path: ['errors', 'items.*.status'],
      });
      expect(res).toEqual({ errors: false, items: [{ index: { status: 201 } }] });
    });

    it('refuses a body over http.max_content_length with 413', async () => {
      const small = await startElasticsearchEmulator({ maxContentLength: 1024 });
      const other = new Client({ node: small.url, maxRetries: 0 });
      try {
        const err = await other
          .bulk({ index: 'big', operations: [{ index: {} }, { text: 'x'.repeat(2000) }] })
          .catch((e: unknown) => e);
        expect((err as errors.ResponseError).meta.statusCode).toBe(413);
      } finally {
        await other.close();
        await small.close();
      }
    });
  });

  describe('near real time', () => {
    it('hides new documents from searches until a refresh, but not from a realtime GET', async () => {
      const index = es.fresh();
      await es.client.index({ index, id: '1', document: { v: 1 } });
      expect((await es.client.count({ index })).count).toBe(0);
      expect((await es.client.get({ index, id: '1' })).found).toBe(true);
      await es.client.indices.refresh({ index });
      expect((await es.client.count({ index })).count).toBe(1);
    });

    it('makes a write searchable at once with refresh=true', async () => {
      const index = es.fresh();
      await es.client.index({ index, id: '1', document: { v: 1 }, refresh: true });
      expect((await es.client.count({ index })).count).toBe(1);
    });

    it('answers refresh=wait_for only once the next scheduled refresh made the write visible', async () => {
      const quick = await startElasticsearchEmulator({ refreshIntervalMs: 30 });
      const other = new Client({ node: quick.url, maxRetries: 0 });
      try {
        await other.bulk({
          index: 'nrt',
          refresh: 'wait_for',
          operations: [{ index: {} }, { v: 1 }],
        });
        expect((await other.count({ index: 'nrt' })).count).toBe(1);
      } finally {
        await other.close();
        await quick.close();
      }
    });

    it('refreshes by itself after refresh_interval', async () => {
      const quick = await startElasticsearchEmulator({ refreshIntervalMs: 20 });
      const other = new Client({ node: quick.url, maxRetries: 0 });
      try {
        await other.index({ index: 'nrt', document: { v: 1 } });
        let count = 0;
        for (let i = 0; i < 100 && count === 0; i++) {
          await sleep(10);
          count = (await other.count({ index: 'nrt' })).count;
        }
        expect(count).toBe(1);
      } finally {
        await other.close();
        await quick.close();
      }
    });
  });

  describe('faults', () => {
    it('answers an injected 429 with es_rejected_execution_exception', async () => {
      es.emulator.faults.add({ action: { status: 429 }, times: 1 });
      const err = await es.failure(es.client.info());
      expect(err).toMatchObject({ status: 429, type: 'es_rejected_execution_exception' });
    });

    it('applies a bulk whose answer is lost to a reset', async () => {
      const index = es.fresh();
      es.emulator.faults.add({
        match: { path: '_bulk' },
        action: { reset: true, resetAfterCommit: true },
        times: 1,
      });
      await expect(
        es.client.bulk({ index, refresh: true, operations: [{ index: { _id: 'x' } }, { v: 1 }] }),
      ).rejects.toBeInstanceOf(errors.ConnectionError);
      expect(es.emulator.documents(index).map((d) => d.id)).toEqual(['x']);
    });

    it('drops a request reset before the work without applying it', async () => {
      const index = es.fresh();
      es.emulator.faults.add({ match: { path: '_bulk' }, action: { reset: true }, times: 1 });
      await expect(
        es.client.bulk({ index, operations: [{ index: { _id: 'x' } }, { v: 1 }] }),
      ).rejects.toBeInstanceOf(errors.ConnectionError);
      expect(es.emulator.documents(index)).toEqual([]);
    });
  });
});
