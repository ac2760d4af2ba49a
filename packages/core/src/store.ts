import type { FileHandle } from 'node:fs/promises';
import type { AttemptKey } from './attempt-key.js';
import type { AttemptFilter } from './path-template.js';

/** A piece of a log: `bytes` start at byte `offset` of the attempt's log. */
export interface LogChunk {
  /** Byte offset of `bytes[0]` in the whole log. */
  readonly offset: number;
  /** The bytes from `offset` on. */
  readonly bytes: Uint8Array;
}

/** What `LogStore.stat` knows about an attempt's stored log. */
export interface LogStat {
  /** Bytes durably stored: the whole log when `complete`, else what the last flush committed. */
  readonly size: number;
  /** True once a writer has finished the log. */
  readonly complete: boolean;
  /**
   * Lower-case hex sha256 of the whole log, only when the store verified it while storing
   * (so a reader may trust it without reading the log back).
   */
  readonly sha256?: string;
  /** When the log was last written, if the store knows. */
  readonly modifiedAt?: Date;
}

/** What a store can do beyond the contract's minimum; callers and the contract suite read these. */
export interface StoreCapabilities {
  /** Bytes flushed by a writer of a running attempt are readable before it finishes. */
  readonly liveAppend: boolean;
  /** read() from offset N costs O(log size - N), not O(N). */
  readonly seekableReads: boolean;
}

/** Options of `LogStore.openWriter`. */
export interface OpenWriterOptions {
  /** Cancels opening the writer (AbortedError). */
  signal?: AbortSignal;
  /**
   * Where the writer keeps the resume state of its `finish()` (e.g. the S3 multipart upload that
   * assembles the chunks), so that a writer killed while finishing is resumed or cleaned up by
   * the next one (or by `sweep()`) instead of leaving billable leftovers.
   */
  journal?: UploadJournal;
}

/** A finished log in a local file, with the size and sha256 the shipper measured. */
export interface LocalLogFile {
  /** Absolute path of the file. */
  path: string;
  /**
   * The file as the shipper opened (and checked) it: a store reads through this handle when it
   * is given (`createReadStream(path, { fd: handle, autoClose: false })`), never the path again.
   */
  handle?: FileHandle;
  /** Its size in bytes, as measured by the shipper. */
  size: number;
  /** Lower-case hex sha256 of its bytes. */
  sha256: string;
}

/**
 * Where a store keeps the state of an upload in progress (e.g. an S3 multipart upload id and
 * its finished parts), so a crashed upload resumes instead of starting over. The shipper backs
 * it with its journal file; the state must be JSON.
 */
export interface UploadJournal {
  /** The state saved last, or undefined when there is none. */
  load(): Promise<unknown>;
  /** Replaces the saved state durably before it resolves. */
  save(state: unknown): Promise<void>;
}

/** Options of `LogStore.upload`. */
export interface UploadOptions {
  /** Cancels the upload (AbortedError); a later upload resumes through `journal`. */
  signal?: AbortSignal;
  /**
   * Called as bytes are stored: (bytes of the file stored so far, file size); first with the
   * bytes an earlier, interrupted upload already stored (0 for a fresh one).
   */
  onProgress?: (done: number, total: number) => void;
  /** Where the upload keeps its resume state (e.g. a multipart upload's id and parts). */
  journal?: UploadJournal;
  /**
   * Replace a log that is already complete (it grew after it was finished: a late writer, a
   * deferred task resuming). The old log stays readable until the new one takes its place
   * atomically. Without it, a complete log is a ConflictError.
   */
  replace?: boolean;
}

/** Options of `LogStore.sweep`. */
export interface SweepOptions {
  /** Cancels the sweep (AbortedError); running it again finishes the job. */
  signal?: AbortSignal;
  /** The journal an interrupted writer or upload of this attempt kept its resume state in. */
  journal?: UploadJournal;
}

/** Options of `LogStore.read`. */
export interface ReadOptions {
  /** First byte to return; default 0. A value past the end throws OffsetOutOfRangeError. */
  offset?: number;
  /** Stop before this byte (exclusive); default: the end of what is stored. */
  end?: number;
  /** Stops the read: the iterator throws AbortedError. */
  signal?: AbortSignal;
}

/** Options of `LogStore.list`. */
export interface ListOptions {
  /** Stops the listing: the iterator throws AbortedError. */
  signal?: AbortSignal;
}

/**
 * One remote log backend. Every method names the errors it throws; all of them are
 * TasklogError subclasses carrying the backend's own error as `cause`.
 */
export interface LogStore {
  /** The store's URL as configured, e.g. `file:///var/log/archive`; never contains secrets. */
  readonly url: string;
  /** What this store supports beyond the minimum, e.g. reading a running attempt. */
  readonly capabilities: StoreCapabilities;

  /**
   * Opens a resumable writer. If an earlier writer of the same attempt died, the new one
   * continues at `committedOffset` (what that writer had flushed); the caller appends from there.
   * Throws ConflictError if the log is already complete, BackendUnavailableError.
   */
  openWriter(key: AttemptKey, options?: OpenWriterOptions): Promise<LogWriter>;

  /**
   * Optional fast path for a finished log: stores the local file as the complete log in one
   * pass (multipart or resumable upload) instead of chunk by chunk, resuming from `journal`
   * after a crash. Verifies what it stored against `file.size` and `file.sha256`.
   * Throws ConflictError if the log is already complete, IntegrityError,
   * BackendUnavailableError.
   */
  upload?(key: AttemptKey, file: LocalLogFile, options?: UploadOptions): Promise<void>;

  /**
   * Streams the log from `offset` in order, each byte once. For a running attempt, what has
   * been committed so far. Throws NotFoundError, OffsetOutOfRangeError, BackendUnavailableError.
   */
  read(key: AttemptKey, options?: ReadOptions): AsyncIterable<LogChunk>;

  /** Size and completeness, or undefined when the store holds nothing for the attempt. */
  stat(key: AttemptKey, options?: { signal?: AbortSignal }): Promise<LogStat | undefined>;

  /** Every attempt the store holds (running or complete) that matches `filter`. */
  list(filter: AttemptFilter, options?: ListOptions): AsyncIterable<AttemptKey>;

  /**
   * Optional: removes what interrupted writers and uploads left beside a *complete* log: chunk
   * objects, temp files, multipart uploads (the one in `journal`, and any the store can find for
   * the key). Does nothing while the log is not complete (its chunks are still the log).
   * Idempotent. Call it when no writer or upload of the attempt is at work: what one of those
   * is writing right now looks the same as what a killed one left. Throws BackendUnavailableError.
   */
  sweep?(key: AttemptKey, options?: SweepOptions): Promise<void>;

  /** Removes the attempt's log and any chunks; a missing attempt is not an error. */
  delete(key: AttemptKey, options?: { signal?: AbortSignal }): Promise<void>;

  /**
   * Checks that the store answers (folder reachable, bucket exists, cluster up) without
   * touching any attempt. Throws BackendUnavailableError.
   */
  ping(options?: { signal?: AbortSignal }): Promise<void>;

  /** Releases clients and handles. */
  close(): Promise<void>;
}

/**
 * Writes one attempt's log, resumably: appended bytes are buffered, `flush()` makes them durable,
 * `finish()` makes the log complete. Opened by `LogStore.openWriter`.
 */
export interface LogWriter {
  /** Bytes durably stored in the backend; a new writer after a crash resumes here. */
  readonly committedOffset: number;
  /** Bytes accepted by append(), committed or not. */
  readonly offset: number;
  /**
   * Queues bytes after the current offset. Resolves when they are buffered; waits (backpressure)
   * while the buffer is full, so memory stays bounded.
   */
  append(bytes: Uint8Array): Promise<void>;
  /** Makes every appended byte durable and readable; resolves with the new committedOffset. */
  flush(): Promise<number>;
  /**
   * Flushes, then marks the log complete as one object/record set. Throws IntegrityError when
   * the stored log's size or sha256 differs from `expected`, leaving the chunks in place.
   */
  finish(expected: { size: number; sha256: string }): Promise<void>;
  /** Drops unflushed bytes and releases resources; what was committed stays. */
  abort(): Promise<void>;
}
