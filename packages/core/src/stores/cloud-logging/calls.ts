import { withRetry } from '../../retry.js';
import type { CallOptions, Context } from './client.js';
import type { ApiEntry, ApiEntryOut } from './entries.js';
import { encodeApiEntry, WriteRequestEncoder } from './entry-protobuf.js';
import { abortable, isRetryable } from './errors.js';
import type { ResolvedCloudLoggingOptions } from './settings.js';

/** One ListLogEntries page. */
export type PageReader = (
  filter: string,
  orderBy: string,
  pageSize: number,
  pageToken: string | undefined,
  signal: AbortSignal | undefined,
) => Promise<{ entries: ApiEntry[]; next: string | undefined }>;

type CallSettings = Pick<
  ResolvedCloudLoggingOptions,
  'resource' | 'pageSize' | 'maxAttempts' | 'maxRetryDelayMs' | 'requestTimeoutMs'
>;

/** An entry for WriteLogEntries: LogEntry bytes (`sends: 'protobuf'`) or the SDK's object form. */
export type OutgoingEntry = ApiEntryOut | Buffer;

/**
 * The two calls the backend makes on its log, WriteLogEntries and ListLogEntries, each with
 * tasklog's deadline and retries: the SDK's own retries are off, so a retried write resends the
 * same entries (same insertIds and timestamps) and nothing else.
 *
 * Over gRPC, WriteLogEntries goes out as bytes tasklog encoded (entry-protobuf.ts, grpc-write.ts);
 * over REST (and gRPC on an SDK whose internals differ) as objects the SDK encodes.
 */
export class LogCalls {
  /** `projects/P/logs/NAME` with NAME URL-encoded. */
  readonly logName: string;
  /** Entries per ListLogEntries page of a scan. */
  readonly pageSize: number;
  /** The form writeOnce takes entries in best: LogEntry bytes, or objects for the SDK. */
  readonly sends: 'protobuf' | 'objects';
  readonly #request: WriteRequestEncoder | undefined;

  constructor(
    readonly ctx: Context,
    readonly settings: CallSettings,
  ) {
    this.logName = ctx.logName;
    this.pageSize = settings.pageSize;
    this.sends = ctx.writeEncoded ? 'protobuf' : 'objects';
    // partialSuccess false: a batch is stored whole or not at all, so committedOffset is exact.
    this.#request = ctx.writeEncoded
      ? new WriteRequestEncoder(ctx.logName, settings.resource, false)
      : undefined;
  }

  /** One WriteLogEntries call, retried with backoff; the same entries on every try. */
  async write(entries: OutgoingEntry[], signal: AbortSignal | undefined): Promise<void> {
    await withRetry(() => this.writeOnce(entries, signal), this.retryOptions(signal));
  }

  /**
   * One try of WriteLogEntries (a writer retries it with retryOptions too). Entries as bytes
   * only when `sends` is `protobuf`; objects always (markers), encoded here then.
   */
  async writeOnce(
    entries: readonly OutgoingEntry[],
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const writeEncoded = this.ctx.writeEncoded;
    if (writeEncoded && this.#request) {
      const bytes = entries.map((e) => (Buffer.isBuffer(e) ? e : encodeApiEntry(e)));
      await writeEncoded(this.#request.request(bytes), this.settings.requestTimeoutMs, signal);
      return;
    }
    const objects = entries.map((e) => {
      if (Buffer.isBuffer(e)) throw new TypeError('LogCalls.sends is objects: got entry bytes');
      return e;
    });
    const request = {
      logName: this.ctx.logName,
      resource: this.settings.resource,
      entries: objects,
      partialSuccess: false,
    };
    await this.#once((options) => this.ctx.client.writeLogEntries(request, options), signal);
  }

  /** One ListLogEntries page, retried. */
  readonly page: PageReader = async (filter, orderBy, pageSize, pageToken, signal) => {
    const request = {
      resourceNames: [`projects/${this.ctx.project}`],
      filter,
      orderBy,
      pageSize,
      ...(pageToken ? { pageToken } : {}),
    };
    const [entries, , response] = await this.#retry(
      (options) => this.ctx.client.listLogEntries(request, { ...options, autoPaginate: false }),
      signal,
    );
    return { entries: entries ?? [], next: response?.nextPageToken || undefined };
  };

  retryOptions(signal: AbortSignal | undefined) {
    return {
      maxAttempts: this.settings.maxAttempts,
      maxDelayMs: this.settings.maxRetryDelayMs,
      retryable: isRetryable,
      signal,
    };
  }

  async #retry<T>(
    call: (options: CallOptions) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    return withRetry(() => this.#once(call, signal), this.retryOptions(signal));
  }

  /** One try of a call: the SDK's own retries off, tasklog's timeout. */
  #once<T>(
    call: (options: CallOptions) => Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    return abortable(call({ retry: null, timeout: this.settings.requestTimeoutMs }), signal);
  }
}
