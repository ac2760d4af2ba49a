import type { estypes } from '@elastic/elasticsearch';
import { IntegrityError } from '../../errors.js';
import type { LogRecord } from '../shared/log-records.js';
import { throwIfAborted } from '../shared/store-checks.js';
import type { Context } from './client.js';
import { AirflowLogJoiner, documentRecord, SOURCE_FIELDS } from './documents.js';
import type { Fields } from './fields.js';
import type { ResolvedElasticsearchOptions } from './options.js';
import { allDocuments, type Hit, ownDocuments, type SearchByOffset } from './paging.js';

type Classified =
  | { kind: 'start' }
  | { kind: 'end'; size: number; sha256?: string }
  | { kind: 'record'; record: LogRecord; foreign?: false }
  | { kind: 'airflow'; text: string };

/** A document of the log as the store reads it (a line Airflow wrote made a `foreign` record). */
export type Item = (
  | { kind: 'start' }
  | { kind: 'end'; size: number; sha256?: string }
  | { kind: 'record'; record: LogRecord; foreign?: boolean }
) & { timestamp?: number };

/** Where the last document stands: what it is (a record's extent only) and when it was written. */
export interface Head {
  doc: Classified;
  timestamp: number | undefined;
}

type DocumentsOptions = Pick<
  ResolvedElasticsearchOptions,
  'index' | 'messageField' | 'endOfLogMark' | 'pageSize' | 'pageWindowBytes' | 'bulkCount'
>;

/** Fields enough to tell where a document stands (`last()`: never a 16 MiB line's text). */
const HEAD_FIELDS = ['log_id', 'offset', 'length', 'start', 'end', 'sha256', '@timestamp'];
/**
 * One attempt's documents (its `log_id`) and the queries every method of the store makes of
 * them, each with the store's retries and the caller's signal.
 */
export class AttemptDocuments {
  constructor(
    readonly ctx: Context,
    readonly o: DocumentsOptions,
    readonly fields: Fields,
    readonly logId: string,
    readonly signal: AbortSignal | undefined,
  ) {}

  get index(): string {
    return this.o.index;
  }

  /** The document with the highest `offset` (at most `maxOffsetField`), if any. */
  async last(maxOffsetField?: number): Promise<Head | undefined> {
    const { ctx, fields, logId, signal } = this;
    const filter: estypes.QueryDslQueryContainer[] = [fields.logIdQuery(logId)];
    if (maxOffsetField !== undefined) filter.push({ range: { offset: { lte: maxOffsetField } } });
    const res = await ctx.call(
      () =>
        ctx.client.search(
          {
            index: this.index,
            size: 1,
            track_total_hits: false,
            query: { bool: { filter } },
            sort: [{ offset: { order: 'desc' } }],
            _source: HEAD_FIELDS,
          },
          { signal },
        ),
      signal,
    );
    const hit = (res.hits.hits as Hit[]).find((h) => h._source?.log_id === logId);
    return hit && { doc: classifyHead(hit._source), timestamp: timestampOf(hit._source) };
  }

  async isComplete(): Promise<boolean> {
    if (this.fields.exactLogId(this.logId)) {
      return (await this.last())?.doc.kind === 'end';
    }
    for await (const item of this.items(0)) {
      if (item.kind === 'end') return true;
    }
    return false;
  }

  /**
   * The attempt's documents with `offset` >= `fromByte` + 1, in offset order. tasklog's own are
   * paged by byte windows (ownDocuments). Documents Airflow's shippers wrote become records of
   * the text Airflow shows (AirflowLogJoiner); then the walk starts over at the log's first
   * document, whatever `fromByte` was, with paging that survives tied offsets (allDocuments).
   */
  async *items(fromByte: number): AsyncGenerator<Item> {
    const { logId, o } = this;
    const logIdQuery = this.fields.logIdQuery(logId);
    let foreign = false;
    const own = ownDocuments(
      this.#search,
      { logIdQuery, from: fromByte > 0 ? fromByte + 1 : 0, pageSize: o.pageSize },
      o.pageWindowBytes,
    );
    for await (const hit of own) {
      // match_phrase (text-mapped log_id) also matches longer ids that contain this one.
      if (hit._source?.log_id !== logId) continue;
      const doc = classify(hit._source, o.messageField);
      if (doc.kind !== 'airflow') {
        yield { ...doc, timestamp: timestampOf(hit._source) } as Item;
        continue;
      }
      foreign = true;
      break;
    }
    if (!foreign) return;
    const joiner = new AirflowLogJoiner(o.endOfLogMark);
    for await (const hit of allDocuments(this.#search, { logIdQuery, pageSize: o.pageSize })) {
      if (hit._source?.log_id !== logId) continue;
      const doc = classify(hit._source, o.messageField);
      if (doc.kind !== 'airflow') continue; // tasklog's marker, if any
      const timestamp = timestampOf(hit._source);
      const line = joiner.add(String(hit.sort?.[0]), doc.text);
      if (!line) continue;
      if (line.kind === 'end') {
        yield { kind: 'end', size: line.size, timestamp };
        return;
      }
      yield { kind: 'record', record: line.record, foreign: true, timestamp };
    }
  }

  /**
   * Deletes the attempt's documents (with `offset` >= `fromByte` + 1 when given):
   * delete-by-query where log_id is a keyword, else by id after a scan (match_phrase on a text
   * log_id would also hit other attempts whose id contains this one).
   */
  async delete(fromByte: number | undefined): Promise<void> {
    const { ctx, fields, logId, signal } = this;
    if (fields.exactLogId(logId)) {
      const filter: estypes.QueryDslQueryContainer[] = [fields.logIdQuery(logId)];
      if (fromByte !== undefined) filter.push({ range: { offset: { gte: fromByte + 1 } } });
      await ctx.call(
        () =>
          ctx.client.deleteByQuery(
            {
              index: this.index,
              query: { bool: { filter } },
              refresh: true,
              conflicts: 'proceed',
            },
            { signal },
          ),
        signal,
      );
      return;
    }
    let ids: string[] = [];
    const flush = async () => {
      if (ids.length === 0) return;
      const ops = ids.map((id) => ({ delete: { _index: this.index, _id: id } }));
      ids = [];
      await ctx.call(() => ctx.client.bulk({ operations: ops, refresh: true }, { signal }), signal);
    };
    const docs = allDocuments(this.#search, {
      logIdQuery: fields.logIdQuery(logId),
      ...(fromByte !== undefined ? { from: fromByte + 1 } : {}),
      pageSize: this.o.pageSize,
    });
    for await (const hit of docs) {
      if (hit._source?.log_id !== logId) continue;
      ids.push(hit._id);
      if (ids.length >= this.o.bulkCount) await flush();
    }
    await flush();
  }

  /** One page of the attempt's documents, sorted by `offset`, with retries and the signal. */
  readonly #search: SearchByOffset = async ({ filter, size, searchAfter }) => {
    const { ctx, signal } = this;
    throwIfAborted(signal);
    const res = await ctx.call(
      () =>
        ctx.client.search(
          {
            index: this.index,
            size,
            track_total_hits: false,
            query: { bool: { filter } },
            sort: [{ offset: { order: 'asc' } }],
            _source: SOURCE_FIELDS,
            ...(searchAfter ? { search_after: searchAfter } : {}),
          },
          { signal },
        ),
      signal,
    );
    return res.hits.hits as Hit[];
  };
}

/** What a document is: tasklog's marker, line or end record, or a line Airflow wrote. */
function classify(source: Record<string, unknown> | undefined, messageField: string): Classified {
  const s = source ?? {};
  if (s.length === undefined || s.length === null) {
    const text = s[messageField] ?? s.message ?? s.event;
    return { kind: 'airflow', text: typeof text === 'string' ? text : String(text ?? '') };
  }
  const offset = Number(s.offset);
  const length = Number(s.length);
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || length < 0) {
    throw new IntegrityError(
      `document of log ${String(s.log_id)} has a malformed offset/length (${String(s.offset)}/${String(s.length)})`,
    );
  }
  if (s.start === true) return { kind: 'start' };
  if (s.end === true) {
    const sha =
      typeof s.sha256 === 'string' && /^[0-9a-f]{64}$/.test(s.sha256) ? s.sha256 : undefined;
    return { kind: 'end', size: offset - 1, ...(sha ? { sha256: sha } : {}) };
  }
  return { kind: 'record', record: documentRecord(s, messageField) };
}

/** classify() of a document read with HEAD_FIELDS: a record's extent, without its bytes. */
function classifyHead(source: Record<string, unknown> | undefined): Classified {
  const s = source ?? {};
  if (s.length === undefined || s.length === null || s.start === true || s.end === true) {
    return classify(s, 'message');
  }
  const offset = Number(s.offset) - 1;
  const length = Number(s.length);
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new IntegrityError(
      `document of log ${String(s.log_id)} has a malformed offset/length (${String(s.offset)}/${String(s.length)})`,
    );
  }
  return { kind: 'record', record: { offset, length } };
}

function timestampOf(source: Record<string, unknown> | undefined): number | undefined {
  const t = source?.['@timestamp'];
  if (typeof t !== 'string' && typeof t !== 'number') return undefined;
  const ms = typeof t === 'number' ? t : Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
}
