import { setTimeout as sleep } from 'node:timers/promises';
import { Client, errors } from '@elastic/elasticsearch';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ElasticsearchEmulator, startElasticsearchEmulator } from './index.js';

/** The `error` object of a failed call, as Elasticsearch sent it. */
async function failure(p: Promise<unknown>): Promise<{
  status: number;
  type: string;
  rootType: string;
  reason: string;
}> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(errors.ResponseError);
  const body = (err as errors.ResponseError).meta.body as {
    error: { type: string; reason: string; root_cause: { type: string }[] };
    status: number;
  };
  return {
    status: body.status,
    type: body.error.type,
    rootType: body.error.root_cause[0]!.type,
    reason: body.error.reason,
  };
}

describe('Elasticsearch emulator with the official client', () => {
  let emulator: ElasticsearchEmulator;
  let client: Client;
  let n = 0;
  let index: string;

  beforeAll(async () => {
    // A long interval: refreshes happen only where a test asks for them.
    emulator = await startElasticsearchEmulator({ refreshIntervalMs: 60_000 });
    client = new Client({ node: emulator.url, maxRetries: 0 });
  });
  afterAll(async () => {
    await client?.close();
    await emulator?.close();
  });
  afterEach(() => {
    emulator.faults.clear();
    emulator.failBulkItems(undefined);
  });
  const fresh = () => {
    index = `emu-${n++}`;
    return index;
  };

  describe('cluster and indices', () => {
    it('answers GET / with a 9.x version and the product header', async () => {
      const res = await client.info({}, { meta: true });
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
      fresh();
      await client.indices.create({
        index,
        mappings: { properties: { offset: { type: 'long' }, log_id: { type: 'keyword' } } },
      });
      expect(await client.indices.exists({ index })).toBe(true);
      const mapping = await client.indices.getMapping({ index });
      expect(mapping[index]!.mappings.properties).toMatchObject({
        offset: { type: 'long' },
        log_id: { type: 'keyword' },
      });
      await client.indices.delete({ index });
      expect(await client.indices.exists({ index })).toBe(false);
    });

    it('refuses to create an index twice with resource_already_exists_exception', async () => {
      fresh();
      await client.indices.create({ index });
      const err = await failure(client.indices.create({ index }));
      expect(err).toMatchObject({ status: 400, type: 'resource_already_exists_exception' });
    });

    it('answers a missing index with 404 index_not_found_exception', async () => {
      const err = await failure(client.search({ index: 'no-such-index' }));
      expect(err).toMatchObject({ status: 404, type: 'index_not_found_exception' });
    });

    it('refuses invalid index names', async () => {
      const err = await failure(client.indices.create({ index: 'Upper' }));
      expect(err).toMatchObject({ status: 400, type: 'invalid_index_name_exception' });
    });

    it('maps new fields dynamically: strings as text with a keyword sub-field, integers as long', async () => {
      fresh();
      await client.index({ index, id: '1', document: { name: 'a b', n: 3 }, refresh: true });
      const mapping = await client.indices.getMapping({ index });
      expect(mapping[index]!.mappings.properties).toMatchObject({
        name: { type: 'text', fields: { keyword: { type: 'keyword', ignore_above: 256 } } },
        n: { type: 'long' },
      });
    });
  });

  describe('bulk', () => {
    it('indexes, creates and deletes with one result per item', async () => {
      fresh();
      const res = await client.bulk({
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
      expect((await client.count({ index })).count).toBe(2);
    });

    it('answers create of an existing id with a per-item 409 version conflict', async () => {
      fresh();
      const res = await client.bulk({
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
      fresh();
      await client.indices.create({
        index,
        mappings: { properties: { offset: { type: 'long' } } },
      });
      const res = await client.bulk({
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
      fresh();
      emulator.failBulkItems({ probability: 0.5, seed: 3 });
      const operations = Array.from({ length: 100 }, (_, i) => [
        { index: { _id: `d${i}` } },
        { i },
      ]).flat();
      const res = await client.bulk({ index, refresh: true, operations });
      const rejected = res.items.filter((i) => i.index!.status === 429);
      expect(res.errors).toBe(true);
      expect(rejected.length).toBeGreaterThan(20);
      expect(rejected[0]!.index!.error!.type).toBe('es_rejected_execution_exception');
      expect((await client.count({ index })).count).toBe(100 - rejected.length);
    });

    it('trims the answer to filter_path', async () => {
      fresh();
      const res = await client.bulk({
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
      fresh();
      await client.index({ index, id: '1', document: { v: 1 } });
      expect((await client.count({ index })).count).toBe(0);
      expect((await client.get({ index, id: '1' })).found).toBe(true);
      await client.indices.refresh({ index });
      expect((await client.count({ index })).count).toBe(1);
    });

    it('makes a write searchable at once with refresh=true', async () => {
      fresh();
      await client.index({ index, id: '1', document: { v: 1 }, refresh: true });
      expect((await client.count({ index })).count).toBe(1);
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

  describe('search', () => {
    beforeAll(async () => {
      index = 'search-data';
      await client.indices.create({
        index,
        mappings: {
          properties: {
            log_id: { type: 'keyword' },
            offset: { type: 'long' },
            message: { type: 'text' },
            dag_id: { type: 'keyword' },
          },
        },
      });
      const operations = [];
      for (let i = 0; i < 25; i++) {
        operations.push(
          { index: { _id: `a${i}` } },
          {
            log_id: 'a-1',
            offset: 25 - i,
            message: `line ${25 - i} of a`,
            dag_id: i % 2 ? 'odd' : 'even',
          },
        );
      }
      operations.push(
        { index: { _id: 'b' } },
        { log_id: 'b-1', offset: 1, message: 'x', dag_id: 'z' },
      );
      await client.bulk({ operations, refresh: true, index });
    });

    it('sorts by a field and carries the sort values in each hit', async () => {
      const res = await client.search({
        index: 'search-data',
        query: { term: { log_id: 'a-1' } },
        sort: [{ offset: 'asc' }],
        size: 3,
      });
      expect(res.hits.hits.map((h) => h.sort)).toEqual([[1], [2], [3]]);
    });

    it('pages with search_after through every document exactly once', async () => {
      const seen: number[] = [];
      let after: (string | number)[] | undefined;
      for (;;) {
        const res = await client.search<{ offset: number }>({
          index: 'search-data',
          query: {
            bool: { filter: [{ term: { log_id: 'a-1' } }, { range: { offset: { gte: 3 } } }] },
          },
          sort: [{ offset: { order: 'asc' } }],
          size: 7,
          ...(after ? { search_after: after } : {}),
        });
        for (const h of res.hits.hits) seen.push(h._source!.offset);
        if (res.hits.hits.length < 7) break;
        after = res.hits.hits.at(-1)!.sort as (string | number)[];
      }
      expect(seen).toEqual(Array.from({ length: 23 }, (_, i) => i + 3));
    });

    it('accepts search_after values sent as strings for numeric fields', async () => {
      const res = await client.search<{ offset: number }>({
        index: 'search-data',
        query: { term: { log_id: 'a-1' } },
        sort: [{ offset: 'desc' }],
        search_after: ['10'],
        size: 2,
      });
      expect(res.hits.hits.map((h) => h._source!.offset)).toEqual([9, 8]);
    });

    it('matches a phrase inside a text field, as Airflow queries log_id', async () => {
      const res = await client.search({
        index: 'search-data',
        query: { match_phrase: { message: '12 of' } },
      });
      expect(res.hits.hits.map((h) => h._id)).toEqual(['a13']);
    });

    it('combines bool must, filter, should and must_not', async () => {
      const res = await client.count({
        index: 'search-data',
        query: {
          bool: {
            filter: [{ term: { log_id: 'a-1' } }],
            must_not: [{ terms: { dag_id: ['odd'] } }],
            must: [{ range: { offset: { gt: 10, lte: 20 } } }],
          },
        },
      });
      expect(res.count).toBe(5);
    });

    it('returns only the requested _source fields', async () => {
      const res = await client.search({
        index: 'search-data',
        query: { term: { log_id: 'b-1' } },
        _source: ['offset'],
      });
      expect(res.hits.hits[0]!._source).toEqual({ offset: 1 });
    });

    it('refuses from + size over index.max_result_window', async () => {
      const err = await failure(client.search({ index: 'search-data', from: 9_999, size: 2 }));
      expect(err).toMatchObject({
        status: 400,
        type: 'search_phase_execution_exception',
        rootType: 'illegal_argument_exception',
      });
    });

    it('refuses sorting on a text field', async () => {
      const err = await failure(client.search({ index: 'search-data', sort: ['message'] }));
      expect(err.rootType).toBe('illegal_argument_exception');
    });

    it('refuses an unknown query type with parsing_exception', async () => {
      const err = await failure(
        client.search({ index: 'search-data', query: { fuzzy_thing: {} } as never }),
      );
      expect(err).toMatchObject({ status: 400, type: 'parsing_exception' });
    });

    it('aggregates terms and pages a composite aggregation with after', async () => {
      const terms = await client.search({
        index: 'search-data',
        size: 0,
        aggs: { dags: { terms: { field: 'dag_id' } } },
      });
      expect((terms.aggregations!.dags as { buckets: unknown[] }).buckets).toEqual([
        { key: 'even', doc_count: 13 },
        { key: 'odd', doc_count: 12 },
        { key: 'z', doc_count: 1 },
      ]);
      const keys: unknown[] = [];
      let after: Record<string, string> | undefined;
      for (;;) {
        const res = await client.search({
          index: 'search-data',
          size: 0,
          aggs: {
            c: {
              composite: {
                size: 2,
                sources: [
                  { log: { terms: { field: 'log_id' } } },
                  { dag: { terms: { field: 'dag_id' } } },
                ],
                ...(after ? { after } : {}),
              },
            },
          },
        });
        const c = res.aggregations!.c as {
          buckets: { key: unknown }[];
          after_key?: Record<string, string>;
        };
        keys.push(...c.buckets.map((b) => b.key));
        if (!c.after_key) break;
        after = c.after_key;
      }
      expect(keys).toEqual([
        { log: 'a-1', dag: 'even' },
        { log: 'a-1', dag: 'odd' },
        { log: 'b-1', dag: 'z' },
      ]);
    });

    it('deletes by query what a search matches', async () => {
      fresh();
      await client.bulk({
        index,
        refresh: true,
        operations: [{ index: {} }, { k: 1 }, { index: {} }, { k: 2 }, { index: {} }, { k: 2 }],
      });
      const res = await client.deleteByQuery({ index, query: { term: { k: 2 } }, refresh: true });
      expect(res.deleted).toBe(2);
      expect((await client.count({ index })).count).toBe(1);
    });
  });

  describe('long values past 2^53', () => {
    /** Raw HTTP: the official client's JSON.parse would round exactly what is checked here. */
    async function raw(method: string, path: string, body?: string): Promise<string> {
      const res = await fetch(`${emulator.url}${path}`, {
        method,
        headers: {
          'content-type': body?.includes('\n{') ? 'application/x-ndjson' : 'application/json',
        },
        ...(body !== undefined ? { body } : {}),
      });
      return res.text();
    }
    // All three round to the same double (1755011166339518208 is the nearest).
    const NS = ['1755011166339518003', '1755011166339518001', '1755011166339518002'];

    it('maps an integer JSON number as long, past 2^53 too, and a fraction as float', async () => {
      fresh();
      await raw('POST', `/${index}/_doc?refresh=true`, `{"offset":${NS[0]},"ratio":0.5,"n":7}`);
      const mapping = JSON.parse(await raw('GET', `/${index}/_mapping`));
      expect(mapping[index].mappings.properties).toMatchObject({
        offset: { type: 'long' },
        ratio: { type: 'float' },
        n: { type: 'long' },
      });
    });

    it('returns _source, sort values and search_after digits exactly and orders by them', async () => {
      fresh();
      const bulk = NS.map((n, i) => `{"index":{"_id":"d${i}"}}\n{"offset":${n}}\n`).join('');
      await raw('POST', `/${index}/_bulk?refresh=true`, bulk);
      const sorted = await raw(
        'POST',
        `/${index}/_search`,
        '{"sort":["offset"],"size":10,"query":{"range":{"offset":{"gt":1755011166339518001}}}}',
      );
      expect(sorted.match(/"offset":\d+/g)).toEqual([
        '"offset":1755011166339518002',
        '"offset":1755011166339518003',
      ]);
      expect(sorted).toContain('"sort":[1755011166339518002]');
      const after = await raw(
        'POST',
        `/${index}/_search`,
        '{"sort":[{"offset":"asc"}],"size":10,"search_after":["1755011166339518001"]}',
      );
      expect(after.match(/"_id":"d\d"/g)).toEqual(['"_id":"d2"', '"_id":"d0"']);
      const count = JSON.parse(
        await raw('POST', `/${index}/_count`, '{"query":{"term":{"offset":1755011166339518003}}}'),
      );
      expect(count.count).toBe(1);
    });

    it('keeps a long up to 2^63-1 and refuses one past it', async () => {
      fresh();
      const ok = JSON.parse(
        await raw('POST', `/${index}/_doc/max?refresh=true`, '{"offset":9223372036854775807}'),
      );
      expect(ok.result).toBe('created');
      expect(await raw('GET', `/${index}/_doc/max`)).toContain('"offset":9223372036854775807');
      const err = JSON.parse(
        await raw('POST', `/${index}/_doc/over`, '{"offset":9223372036854775808}'),
      );
      expect(err.error.type).toBe('document_parsing_exception');
      expect(err.error.caused_by.type).toBe('input_coercion_exception');
    });

    it('matches a prefix of a keyword and never indexes binary or index: false fields', async () => {
      fresh();
      await client.indices.create({
        index,
        mappings: {
          properties: {
            log_id: { type: 'keyword' },
            blob: { type: 'binary' },
            hidden: { type: 'text', index: false },
          },
        },
      });
      await client.bulk({
        index,
        refresh: true,
        operations: [
          { index: { _id: 'a' } },
          { log_id: 'dag-task-run-1', blob: 'AAE=', hidden: 'secret words' },
          { index: { _id: 'b' } },
          { log_id: 'other-task-run-1' },
        ],
      });
      const hits = await client.search({ index, query: { prefix: { log_id: 'dag-' } } });
      expect(hits.hits.hits.map((h) => h._id)).toEqual(['a']);
      const hidden = await client.search({ index, query: { match: { hidden: 'secret' } } });
      expect(hidden.hits.hits).toEqual([]);
      const blob = await client.search({ index, query: { exists: { field: 'blob' } } });
      expect(blob.hits.hits).toEqual([]);
    });
  });

  describe('faults', () => {
    it('answers an injected 429 with es_rejected_execution_exception', async () => {
      emulator.faults.add({ action: { status: 429 }, times: 1 });
      const err = await failure(client.info());
      expect(err).toMatchObject({ status: 429, type: 'es_rejected_execution_exception' });
    });

    it('applies a bulk whose answer is lost to a reset', async () => {
      fresh();
      emulator.faults.add({
        match: { path: '_bulk' },
        action: { reset: true, resetAfterCommit: true },
        times: 1,
      });
      await expect(
        client.bulk({ index, refresh: true, operations: [{ index: { _id: 'x' } }, { v: 1 }] }),
      ).rejects.toBeInstanceOf(errors.ConnectionError);
      expect(emulator.documents(index).map((d) => d.id)).toEqual(['x']);
    });

    it('drops a request reset before the work without applying it', async () => {
      fresh();
      emulator.faults.add({ match: { path: '_bulk' }, action: { reset: true }, times: 1 });
      await expect(
        client.bulk({ index, operations: [{ index: { _id: 'x' } }, { v: 1 }] }),
      ).rejects.toBeInstanceOf(errors.ConnectionError);
      expect(emulator.documents(index)).toEqual([]);
    });
  });
});
