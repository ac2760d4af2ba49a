import { beforeAll, describe, expect, it } from 'vitest';
import * as es from './es-emulator-fixture.js';

// Searches, sorting, paging and aggregations, and long values past 2^53.
describe('Elasticsearch emulator with the official client', () => {
  es.startEmulatorForThisFile();

  describe('search', () => {
    beforeAll(async () => {
      const index = 'search-data';
      await es.createIndex(index, {
        log_id: { type: 'keyword' },
        offset: { type: 'long' },
        message: { type: 'text' },
        dag_id: { type: 'keyword' },
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
      await es.client.bulk({ operations, refresh: true, index });
    });

    it('sorts by a field and carries the sort values in each hit', async () => {
      const res = await es.client.search({
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
        const res = await es.client.search<{ offset: number }>({
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
      const res = await es.client.search<{ offset: number }>({
        index: 'search-data',
        query: { term: { log_id: 'a-1' } },
        sort: [{ offset: 'desc' }],
        search_after: ['10'],
        size: 2,
      });
      expect(res.hits.hits.map((h) => h._source!.offset)).toEqual([9, 8]);
    });

    it('matches a phrase inside a text field, as Airflow queries log_id', async () => {
      const res = await es.client.search({
        index: 'search-data',
        query: { match_phrase: { message: '12 of' } },
      });
      expect(res.hits.hits.map((h) => h._id)).toEqual(['a13']);
    });

    it('combines bool must, filter, should and must_not', async () => {
      const res = await es.client.count({
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
      const res = await es.client.search({
        index: 'search-data',
        query: { term: { log_id: 'b-1' } },
        _source: ['offset'],
      });
      expect(res.hits.hits[0]!._source).toEqual({ offset: 1 });
    });

    it('refuses from + size over index.max_result_window', async () => {
      const err = await es.failure(
        es.client.search({ index: 'search-data', from: 9_999, size: 2 }),
      );
      expect(err).toMatchObject({
        status: 400,
        type: 'search_phase_execution_exception',
        rootType: 'illegal_argument_exception',
      });
    });

    it('refuses sorting on a text field', async () => {
      const err = await es.failure(es.client.search({ index: 'search-data', sort: ['message'] }));
      expect(err.rootType).toBe('illegal_argument_exception');
    });

    it('refuses an unknown query type with parsing_exception', async () => {
      const err = await es.failure(
        es.client.search({ index: 'search-data', query: { fuzzy_thing: {} } as never }),
      );
      expect(err).toMatchObject({ status: 400, type: 'parsing_exception' });
    });

    it('aggregates terms and pages a composite aggregation with after', async () => {
      const terms = await es.client.search({
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
        const res = await es.client.search({
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
      const index = es.fresh();
      await es.client.bulk({
        index,
        refresh: true,
        operations: [{ index: {} }, { k: 1 }, { index: {} }, { k: 2 }, { index: {} }, { k: 2 }],
      });
      const res = await es.client.deleteByQuery({
        index,
        query: { term: { k: 2 } },
        refresh: true,
      });
      expect(res.deleted).toBe(2);
      expect((await es.client.count({ index })).count).toBe(1);
    });
  });

  describe('long values past 2^53', () => {
    /** Raw HTTP: the official client's JSON.parse would round exactly what is checked here. */
    async function raw(method: string, path: string, body?: string): Promise<string> {
      const res = await fetch(`${es.emulator.url}${path}`, {
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
      const index = es.fresh();
      await raw('POST', `/${index}/_doc?refresh=true`, `{"offset":${NS[0]},"ratio":0.5,"n":7}`);
      const mapping = JSON.parse(await raw('GET', `/${index}/_mapping`));
      expect(mapping[index].mappings.properties).toMatchObject({
        offset: { type: 'long' },
        ratio: { type: 'float' },
        n: { type: 'long' },
      });
    });

    it('returns _source, sort values and search_after digits exactly and orders by them', async () => {
      const index = es.fresh();
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
      const index = es.fresh();
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
      const index = es.fresh();
      await es.createIndex(index, {
        log_id: { type: 'keyword' },
        blob: { type: 'binary' },
        hidden: { type: 'text', index: false },
      });
      await es.client.bulk({
        index,
        refresh: true,
        operations: [
          { index: { _id: 'a' } },
          { log_id: 'dag-task-run-1', blob: 'AAE=', hidden: 'secret words' },
          { index: { _id: 'b' } },
          { log_id: 'other-task-run-1' },
        ],
      });
      const hits = await es.client.search({ index, query: { prefix: { log_id: 'dag-' } } });
      expect(hits.hits.hits.map((h) => h._id)).toEqual(['a']);
      const hidden = await es.client.search({ index, query: { match: { hidden: 'secret' } } });
      expect(hidden.hits.hits).toEqual([]);
      const blob = await es.client.search({ index, query: { exists: { field: 'blob' } } });
      expect(blob.hits.hits).toEqual([]);
    });
  });
});
