import type { AttemptKey } from '../../attempt-key.js';
import { InvalidInputError } from '../../errors.js';
import type { AttemptFilter } from '../../path-template.js';
import type * as contract from '../../store.js';
import type { OpenStoreOptions } from '../registry.js';
import { operation, streamOperation } from '../shared/operation.js';
import { checkReadRange } from '../shared/store-checks.js';
import { readAirflow, statAirflow } from './airflow-read.js';
import { LogCalls } from './calls.js';
import { connectLogging } from './client.js';
import { ALL_TIME, quote } from './entries.js';
import { cloudLoggingError } from './errors.js';
import { listAttempts } from './listing.js';
import { LogicalDates } from './logical-date.js';
import { newestEntry, readAttempt } from './reads.js';
import { openAttemptWriter } from './resume.js';
import {
  type CloudLoggingStoreOptions,
  type ResolvedCloudLoggingOptions,
  resolveCloudLoggingOptions,
} from './settings.js';
import { latestTombstone, writeTombstone } from './tombstones.js';

export { MAX_ENTRY_BYTES, MAX_PIECE_BYTES } from './entries.js';
export type { LogicalDateSource } from './logical-date.js';
export type { CloudLoggingStoreOptions } from './settings.js';

/**
 * The `cloud-logging://LOG_NAME` archive in Google Cloud Logging (Airflow's
 * `stackdriver://LOG_NAME`), laid out for Airflow's
 * StackdriverTaskHandler (entries.ts): one entry per line in log LOG_NAME, resource
 * `global`, Airflow's labels `dag_id`, `task_id`, `try_number` and the run's logical date
 * (`logical_date` and `execution_date`, see logical-date.ts), tasklog's `run_id`,
 * `map_index`, `offset`, `length`, the line in `jsonPayload.message`.
 *
 * - Each entry has a deterministic `insertId` (sha256 of relative path, kind, offset, length)
 *   and a timestamp that grows by at least 1 µs per entry along the log (max(clock, previous +
 *   1 µs)), so timestamp order is offset order. A retried write resends the same entries with
 *   the same insertIds and timestamps, which the service de-duplicates.
 * - A finished log ends with an entry labelled `tasklog_end=true`, `size`, `sha256`.
 * - Cloud Logging cannot delete single entries (DeleteLog drops the whole log, every attempt),
 *   so delete() writes a tombstone entry (`tasklog_deleted=true`); readers ignore everything of
 *   the attempt up to the newest tombstone. The entries stay until the bucket's retention ends.
 * - Labels compare as strings, so reads cannot start at an offset: read(offset) pages from the
 *   attempt's first entry and skips, O(offset) (`seekableReads: false`).
 * - An attempt tasklog holds no entries of is looked for among the entries Airflow's own handler
 *   wrote (airflow-read.ts), found through its run's logical date.
 * - The generated `LoggingServiceV2Client` of `@google-cloud/logging` is used directly, not
 *   `Log.write` / `Log.getEntries`: those add a diagnostic entry on the first write of a
 *   process and silently restrict filters to the last 24 h; filters here are explicit
 *   (`timestamp >= 1970`) anyway. Over gRPC, its WriteLogEntries goes out as protobuf bytes
 *   tasklog encodes once per entry, on the client's own stub (entry-protobuf.ts, grpc-write.ts).
 */
export class CloudLoggingStore implements contract.LogStore {
  readonly url: string;
  readonly capabilities: contract.StoreCapabilities = { liveAppend: true, seekableReads: false };
  readonly logName: string;
  /** The checked options with their defaults filled in. */
  readonly options: Readonly<ResolvedCloudLoggingOptions>;
  readonly #dates: LogicalDates;
  #calls: Promise<LogCalls> | undefined;

  constructor(options: CloudLoggingStoreOptions) {
    const o = resolveCloudLoggingOptions(options);
    this.options = o;
    this.logName = o.logName;
    this.#dates = new LogicalDates({ source: o.airflowDb, warn: o.warn });
    this.url = `${o.scheme}://${o.logName}`;
  }

  /**
   * `cloud-logging://LOG_NAME` or Airflow's `stackdriver://LOG_NAME`; settings from the
   * `[cloud_logging]` config section, logical dates
   * from Airflow's metadata database when `airflowDbUrl` (`agent.airflow_db_url`) is given,
   * opened read-only on first use.
   */
  static fromUrl(
    url: string,
    options: OpenStoreOptions = {},
    overrides: Partial<CloudLoggingStoreOptions> = {},
  ): CloudLoggingStore {
    const m = /^(cloud-logging|stackdriver):\/\/([^?#]+)$/i.exec(url);
    if (!m) {
      throw new InvalidInputError(
        `Cloud Logging store URL must look like cloud-logging://LOG_NAME (or stackdriver://LOG_NAME), got ${JSON.stringify(url)}`,
      );
    }
    let logName: string;
    try {
      logName = decodeURIComponent(m[2]!.replace(/^\/+|\/+$/g, ''));
    } catch (err) {
      throw new InvalidInputError(`bad escape in store URL ${url}`, { cause: err });
    }
    const cfg = options.cloud_logging ?? {};
    const dbUrl = options.airflowDbUrl;
    return new CloudLoggingStore({
      logName,
      scheme: m[1]!.toLowerCase() === 'stackdriver' ? 'stackdriver' : 'cloud-logging',
      pathTemplate: options.pathTemplate,
      projectId: cfg.project_id,
      resourceType: cfg.resource_type,
      resourceLabels: cfg.resource_labels,
      apiEndpoint: cfg.api_endpoint,
      transport: cfg.transport,
      maxAttempts: cfg.max_attempts,
      airflowDb:
        dbUrl === undefined
          ? undefined
          : async () => (await import('../../airflow/airflow-db.js')).openAirflowDb(dbUrl),
      ...overrides,
    });
  }

  /** Throws ConflictError if the log is complete; BackendUnavailableError, AbortedError. */
  async openWriter(
    key: AttemptKey,
    { signal }: contract.OpenWriterOptions = {},
  ): Promise<contract.LogWriter> {
    const rel = this.options.pathTemplate.render(key);
    const where = this.#where(key);
    const mapError = (err: unknown) => cloudLoggingError(err, where, 'open a writer for');
    return operation(signal, mapError, async () => {
      const settings = { ...this.options, nowMicros: () => this.nowMicros() };
      const at = { rel, where, settings };
      return openAttemptWriter(await this.#connect(), this.#dates, key, at, signal);
    });
  }

  /**
   * Streams the log from `offset`, paging from the attempt's first entry (O(offset), see the
   * class comment); an attempt tasklog never wrote, as Airflow's own entries show it. Throws
   * NotFoundError, OffsetOutOfRangeError, IntegrityError (a finished log with a hole),
   * BackendUnavailableError, AbortedError.
   */
  async *read(
    key: AttemptKey,
    options: contract.ReadOptions = {},
  ): AsyncGenerator<contract.LogChunk> {
    const { offset, end, signal } = checkReadRange(options);
    const where = this.#where(key);
    const mapError = (err: unknown) => cloudLoggingError(err, where, 'read');
    yield* streamOperation(signal, mapError, () => this.#readFrom(key, offset, end, signal));
  }

  /**
   * Complete → size and sha256 of the end entry. Running → the end of the entry with the newest
   * timestamp, which is the highest offset because timestamps grow along the log (one query,
   * no scan; a running log with a hole would report past it). Airflow's own entries: the size of
   * its view (a scan), never complete. Throws BackendUnavailableError.
   */
  async stat(
    key: AttemptKey,
    { signal }: { signal?: AbortSignal } = {},
  ): Promise<contract.LogStat | undefined> {
    const mapError = (err: unknown) => cloudLoggingError(err, this.#where(key), 'stat');
    return operation(signal, mapError, async () => {
      const calls = await this.#connect();
      const item = await newestEntry(calls, key, signal);
      if (item?.kind === 'tombstone') return undefined;
      if (!item) return await statAirflow(calls, this.#dates, key, signal);
      const modifiedAt = new Date(Math.floor(item.micros / 1000));
      if (item.kind === 'end')
        return { size: item.size, complete: true, sha256: item.sha256, modifiedAt };
      return { size: item.record.offset + item.record.length, complete: false, modifiedAt };
    });
  }

  /**
   * Every attempt with entries matching `filter` (see listing.ts), and with `dagId` and `runId`
   * given, the tries of Airflow's own entries of that run. Throws BackendUnavailableError.
   */
  async *list(
    filter: AttemptFilter,
    { signal }: contract.ListOptions = {},
  ): AsyncGenerator<AttemptKey> {
    const mapError = (err: unknown) => cloudLoggingError(err, `log ${this.logName}`, 'list');
    yield* streamOperation(signal, mapError, () => this.#listFrom(filter, signal));
  }

  /**
   * Writes a tombstone newer than the attempt's newest entry (see the class comment); nothing
   * when the attempt has no entries or is already deleted. Throws BackendUnavailableError.
   */
  async delete(key: AttemptKey, { signal }: { signal?: AbortSignal } = {}): Promise<void> {
    const mapError = (err: unknown) => cloudLoggingError(err, this.#where(key), 'delete');
    return operation(signal, mapError, async () => {
      const calls = await this.#connect();
      const newest = await newestEntry(calls, key, signal);
      if (newest?.kind === 'tombstone') return;
      let micros: number;
      if (newest) micros = newest.micros;
      else {
        const airflow = await statAirflow(calls, this.#dates, key, signal);
        if (!airflow) return;
        micros = (airflow.modifiedAt?.getTime() ?? 0) * 1000;
      }
      await writeTombstone(calls, key, Math.max(this.nowMicros(), micros + 1), signal);
    });
  }

  /** One ListLogEntries call on the log. Throws BackendUnavailableError. */
  async ping({ signal }: { signal?: AbortSignal } = {}): Promise<void> {
    const mapError = (err: unknown) => cloudLoggingError(err, `log ${this.logName}`, 'reach');
    return operation(signal, mapError, async () => {
      const calls = await this.#connect();
      const filter = `logName=${quote(calls.logName)} AND ${ALL_TIME}`;
      await calls.page(filter, 'timestamp desc', 1, undefined, signal);
    });
  }

  async close(): Promise<void> {
    await this.#dates.close();
    const calls = this.#calls;
    this.#calls = undefined;
    if (!calls) return;
    const resolved = await calls.catch(() => undefined);
    await resolved?.ctx.client.close().catch(() => undefined);
  }

  /** The clock in µs. */
  nowMicros(): number {
    return Math.floor(this.options.now() * 1000);
  }

  /** tasklog's entries of the attempt after its tombstone, else Airflow's own (airflow-read.ts). */
  async *#readFrom(
    key: AttemptKey,
    offset: number,
    end: number | undefined,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<contract.LogChunk> {
    const calls = await this.#connect();
    const tombstone = await latestTombstone(calls, key, signal);
    const range = { tombstone, offset, end, where: this.#where(key) };
    const { found } = yield* readAttempt(calls, key, range, signal);
    if (!found) yield* readAirflow(calls, this.#dates, key, range, signal);
  }

  async *#listFrom(filter: AttemptFilter, signal: AbortSignal | undefined) {
    yield* listAttempts(await this.#connect(), this.#dates, filter, signal);
  }

  #where(key: AttemptKey): string {
    const map = key.mapIndex >= 0 ? ` map_index=${key.mapIndex}` : '';
    return `${this.url} dag_id=${key.dagId} run_id=${key.runId} task_id=${key.taskId}${map} try_number=${key.tryNumber}`;
  }

  /** The started client and the log's calls, built on first use. */
  #connect(): Promise<LogCalls> {
    this.#calls ??= connectLogging({
      logName: this.logName,
      projectId: this.options.projectId,
      apiEndpoint: this.options.apiEndpoint,
      transport: this.options.transport,
    })
      .then((ctx) => new LogCalls(ctx, this.options))
      .catch((err: unknown) => {
        // A failed start leaves the SDK client unusable; the next call starts over.
        this.#calls = undefined;
        throw err;
      });
    return this.#calls;
  }
}
