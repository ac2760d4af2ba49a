import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import { NotFoundError } from '../../errors.js';
import type { AttemptFilter } from '../../path-template.js';
import type * as contract from '../../store.js';
import type { OpenStoreOptions } from '../registry.js';
import { type ErrorMapper, operation, streamOperation } from '../shared/operation.js';
import { RecordWriter } from '../shared/record-writer.js';
import { checkReadRange, validateFilter } from '../shared/store-checks.js';
import { AttemptDocuments } from './attempt-documents.js';
import { LazyContext } from './client.js';
import { LineDocumentBuilder } from './documents.js';
import { esError } from './errors.js';
import { IndexSetup } from './index-setup.js';
import { listAttempts } from './listing.js';
import {
  type ElasticsearchStoreOptions,
  optionsFromUrl,
  type ResolvedElasticsearchOptions,
  resolveElasticsearchOptions,
} from './options.js';
import { readLog, resumePoint, statLog } from './reads.js';
import type { ElasticsearchSettings } from './settings.js';
import { ElasticsearchSink } from './sink.js';

export type { ElasticsearchStoreOptions } from './options.js';
export { AIRFLOW_LOG_ID_TEMPLATE, type ElasticsearchSettings, MAX_LINE_BYTES } from './settings.js';

/**
 * The `elasticsearch+https://host:9200/INDEX` archive, one document per line, readable by
 * Airflow's Elasticsearch task handler (providers `ElasticsearchTaskHandler`).
 *
 * A document: `log_id` (Airflow's template), `offset`, `length`, the line as Airflow should show
 * it in `message` (or `event`), `host`, `@timestamp`, Airflow's json fields `dag_id`, `task_id`,
 * `run_id`, `map_index`, `try_number`, and, where the shown text alone would not give the exact
 * bytes back, hidden fields (see documents.ts): CRLF, bytes that are not UTF-8, a
 * character a flush cut in two, Airflow 3's JSON lines shown as their `event`.
 *
 * - `offset` is the byte offset of the line's first byte PLUS ONE. Airflow pages with
 *   `range offset > N` starting at N = 0 (its own writer counts from 1), so a 0 would hide the
 *   first line from Airflow. `length` is the number of log bytes the document covers.
 * - A line up to `maxLineBytes` (16 MiB) is one document; a longer one is split (never inside
 *   a character), and so is a running attempt's unfinished line at a flush; offsets and
 *   lengths join the pieces exactly, Airflow shows each as a line.
 * - The end-of-log document has the end mark as its text (Airflow stops tailing on it),
 *   `offset` = size + 1, `length` 0, `end: true`, `sha256`.
 * - An opened attempt gets a start marker (`offset` 0, `length` 0, `start: true`) so it
 *   exists before its first line; Airflow's `offset > 0` never returns it.
 * - `_id` = sha1(log_id, offset): a retried bulk overwrites instead of duplicating.
 * - Near real time: a document is searchable after the index's next refresh (`refresh_interval`,
 *   1 s by default). flush() and finish() send their last request with `refresh=wait_for`, so
 *   what they report committed is readable when they resolve (up to 1 s per flush); lines a
 *   running writer sent on its own (a full bulk) may stay invisible for up to that long.
 * - Documents Airflow's own shippers wrote (no `length`; `offset` a nanosecond timestamp or a
 *   counter, possibly repeated) read as Airflow shows them: their messages in `offset` order
 *   joined with "\n", up to the end mark (AirflowLogJoiner); reading such a log from offset N
 *   scans it from its start.
 *
 * The SDK is loaded on first use.
 */
export class ElasticsearchStore implements contract.LogStore {
  readonly url: string;
  readonly capabilities: contract.StoreCapabilities = { liveAppend: true, seekableReads: true };
  readonly index: string;
  /** The checked options with their defaults filled in. */
  readonly options: Readonly<ResolvedElasticsearchOptions>;
  readonly #context: LazyContext;
  readonly #setup: IndexSetup;

  /** Throws InvalidInputError naming the option that is wrong. */
  constructor(options: ElasticsearchStoreOptions) {
    const o = resolveElasticsearchOptions(options);
    this.options = o;
    this.url = o.url;
    this.index = o.index;
    this.#context = new LazyContext(o);
    this.#setup = new IndexSetup(o);
  }

  /**
   * `elasticsearch+https://[user:password@]host[:port][/path]/INDEX` (or `elasticsearch+http`).
   * Credentials in the URL are used for basic auth and left out of `url`. Settings come from the
   * `[elasticsearch]` section (`options.elasticsearch`), then `overrides`.
   */
  static fromUrl(
    url: string,
    options: OpenStoreOptions & { elasticsearch?: Partial<ElasticsearchSettings> } = {},
    overrides: Partial<ElasticsearchStoreOptions> = {},
  ): ElasticsearchStore {
    return new ElasticsearchStore(optionsFromUrl(url, options.elasticsearch ?? {}, overrides));
  }

  /** Airflow's log_id of an attempt. */
  logId(key: AttemptKey): string {
    return this.options.logIdTemplate.render(attemptKey(key));
  }

  /**
   * Creates the index if needed, reads where the attempt stands, removes documents a crashed
   * writer left after a gap, and marks the attempt as started. Throws ConflictError when the log
   * is complete (or was written by Airflow itself), BackendUnavailableError, InvalidInputError
   * (the index maps tasklog's fields incompatibly), AbortedError.
   */
  async openWriter(
    key: AttemptKey,
    { signal }: contract.OpenWriterOptions = {},
  ): Promise<contract.LogWriter> {
    const k = attemptKey(key);
    const logId = this.options.logIdTemplate.render(k);
    return operation(signal, this.#errors(logId, 'open a writer for'), async () => {
      const ctx = await this.#context.get();
      const fields = await this.#setup.ensure(ctx, signal);
      // Lines a crashed writer had sent without waiting for a refresh must count too.
      await ctx.call(() => ctx.client.indices.refresh({ index: this.index }, { signal }), signal);
      const docs = new AttemptDocuments(ctx, this.options, fields, logId, signal);
      const at = await resumePoint(docs);
      if (at.stale) await docs.delete(at.committed);
      const sink = new ElasticsearchSink(ctx, this.options, k, logId, at.lastTimestamp, {
        builder: new LineDocumentBuilder(
          this.options.messageField,
          fields.structuredFields(this.options.messageField),
          at.held,
        ),
        readLog: () => this.read(k),
      });
      const writer = new RecordWriter(sink, {
        committed: at.committed,
        prefix: () => sink.readBack(),
      });
      if (!at.started) await writer.sendFirst([sink.startMarker()]);
      return writer;
    });
  }

  /**
   * Streams the log from `offset`: one query for the document holding `offset`, then pages of
   * `search_after` on `offset` (never deep from/size paging). Throws NotFoundError,
   * OffsetOutOfRangeError, IntegrityError (a finished log with missing lines),
   * InvalidInputError, BackendUnavailableError, AbortedError.
   */
  async *read(
    key: AttemptKey,
    options: contract.ReadOptions = {},
  ): AsyncGenerator<contract.LogChunk> {
    const { offset, end, signal } = checkReadRange(options);
    const logId = this.logId(key);
    yield* streamOperation(signal, this.#errors(logId, 'read'), () =>
      this.#read(key, logId, offset, end, signal),
    );
  }

  /** read() with its arguments checked; failures are mapped by the caller. */
  async *#read(
    key: AttemptKey,
    logId: string,
    offset: number,
    end: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<contract.LogChunk> {
    const docs = await this.#documents(logId, signal);
    if (!docs) throw new NotFoundError(`no log ${logId} in index ${this.index}`);
    yield* readLog(docs, offset, end, () => this.stat(key, { signal }));
  }

  /**
   * Finished → size and sha256 of the end record. Running → the end of the document with the
   * highest offset (one query; a gap a crashed writer left before it is not noticed here, a
   * read stops at it). A log Airflow wrote itself is read through to add up its bytes.
   * Undefined when the index holds nothing for the attempt. Throws BackendUnavailableError.
   */
  async stat(
    key: AttemptKey,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<contract.LogStat | undefined> {
    const logId = this.logId(key);
    return operation(signal, this.#errors(logId, 'stat'), async () => {
      const docs = await this.#documents(logId, signal);
      return docs && statLog(docs);
    });
  }

  /**
   * Every attempt with documents matching `filter`: tasklog's by a composite aggregation over
   * dag_id, run_id, task_id, map_index, try_number; those Airflow's shippers wrote (no run_id,
   * no map_index) by their `log_id` (a `prefix` query from what the filter pins, parsed back with
   * the template; an id that splits more than one way, e.g. `-` inside ids of a `-` template,
   * needs dag_id and task_id in the filter). Throws BackendUnavailableError, InvalidInputError
   * (the index maps the id fields as text only), AbortedError.
   */
  async *list(
    filter: AttemptFilter,
    { signal }: contract.ListOptions = {},
  ): AsyncGenerator<AttemptKey> {
    const wanted = validateFilter(filter);
    yield* streamOperation(signal, this.#errors(undefined, 'list'), () =>
      this.#list(wanted, signal),
    );
  }

  /** list() with its filter checked: nothing when the index does not exist. */
  async *#list(wanted: AttemptFilter, signal: AbortSignal | undefined): AsyncGenerator<AttemptKey> {
    const ctx = await this.#context.get();
    const fields = await this.#setup.existing(ctx, signal);
    if (fields) yield* listAttempts(ctx, this.options, fields, wanted, signal);
  }

  /** Deletes every document of the attempt; a missing attempt or index is not an error. */
  async delete(key: AttemptKey, { signal }: { signal?: AbortSignal } = {}): Promise<void> {
    const logId = this.logId(key);
    await operation(signal, this.#errors(logId, 'delete'), async () => {
      const docs = await this.#documents(logId, signal);
      await docs?.delete(undefined);
    });
  }

  /** `GET /` (cluster info). Throws BackendUnavailableError. */
  async ping(options: { signal?: AbortSignal } = {}): Promise<void> {
    await operation(options.signal, this.#errors(undefined, 'reach'), async () => {
      const ctx = await this.#context.get();
      await ctx.client.info(undefined, { signal: options.signal });
    });
  }

  async close(): Promise<void> {
    this.#setup.forget();
    await this.#context.close();
  }

  /** The attempt's documents, or undefined when the index does not exist. */
  async #documents(
    logId: string,
    signal: AbortSignal | undefined,
  ): Promise<AttemptDocuments | undefined> {
    const ctx = await this.#context.get();
    const fields = await this.#setup.existing(ctx, signal);
    return fields && new AttemptDocuments(ctx, this.options, fields, logId, signal);
  }

  /** Client errors as tasklog's, naming the index and the log (`logId`), keeping `cause`. */
  #errors(logId: string | undefined, action: string): ErrorMapper {
    return (err) => esError(err, this.index, logId, action);
  }
}
