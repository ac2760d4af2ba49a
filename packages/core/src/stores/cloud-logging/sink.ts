import type { TasklogError } from '../../errors.js';
import type { LogRecord } from '../shared/log-records.js';
import type {
  OutgoingBatch,
  RecordCut,
  RecordLimits,
  RecordRetry,
  RecordSink,
} from '../shared/record-writer.js';
import type { OutgoingEntry } from './calls.js';
import {
  type ApiEntryOut,
  type EntryCutter,
  type EntryPiece,
  insertIds,
  L,
  toStruct,
} from './entries.js';
import { entryFieldSize, LogEntryEncoder } from './entry-protobuf.js';
import { cloudLoggingError } from './errors.js';

/** What the sink needs of its store. */
export interface SinkBackend {
  readonly maxBatchEntries: number;
  readonly maxBatchBytes: number;
  readonly maxPieceBytes: number;
  /** The clock in µs. */
  nowMicros(): number;
  /** The form `write` takes entries in (LogCalls.sends). */
  readonly sends: 'protobuf' | 'objects';
  /** One WriteLogEntries call, no retries (the writer retries it with `retry`). */
  write(entries: OutgoingEntry[]): Promise<void>;
  readonly retry: RecordRetry;
}

/** Where a writer starts: what earlier writers of the attempt stored. */
export interface SinkStart {
  /** Newest entry timestamp of the attempt, µs; the writer's entries come after it. */
  lastMicros: number;
  /** The unfinished line's bytes stored only as hidden parts, and where they start. */
  pending: { offset: number; bytes: Buffer } | undefined;
}

/** One entry ready to send. */
export interface QueuedEntry {
  /** LogEntry bytes, or the SDK's object form: what the backend sends. */
  entry: OutgoingEntry;
  /**
   * Its size in the request: exact for bytes; for an object its JSON size, which bounds the
   * protobuf size the service counts.
   */
  bytes: number;
  end: number | undefined;
}

/**
 * One attempt's entries as the RecordWriter's sink, in WriteLogEntries batches (≤ maxBatchEntries
 * entries, ≤ maxBatchBytes estimated bytes). No timer: the shipper's flush() decides when a
 * partial batch goes out. A resent batch carries the same insertIds and timestamps, so the
 * service drops the copies a lost answer made the writer send again.
 *
 * Lines: a complete line (or a maxPieceBytes piece of a longer one) becomes an entry Airflow
 * shows. A flush in the middle of a line stores what there is as hidden parts and keeps those
 * bytes (less than maxPieceBytes); when the line ends, one shown entry carries the whole line
 * (see entries.ts). So Airflow shows a running attempt's lines as whole as a
 * finished one's, each once, and never the unfinished last line.
 *
 * Entries are encoded once, here, in the form the transport sends (LogEntry bytes over gRPC,
 * objects for the SDK's REST transport), so a resent batch resends the same bytes.
 */
export class CloudLoggingSink implements RecordSink<QueuedEntry> {
  readonly name: string;
  readonly limits: RecordLimits;
  readonly retry: RecordRetry;
  /**
   * A writer whose batch could not be stored even after retries fails for good: a new writer
   * resumes at what the service holds (re-reading the unfinished line's hidden parts) and
   * resends, with the same insertIds, whatever this one did store.
   */
  readonly afterFailedBatch = 'fail';
  #lastMicros: number;
  /** The current line's bytes that are stored as hidden parts only (Airflow does not show them yet). */
  #pending: { offset: number; bytes: Buffer } | undefined;
  /** An entry's JSON size without its payload, at most. */
  readonly #entryBytes: number;
  readonly #insertId: (kind: string, offset: number, length: number) => string;
  /** Set when the backend sends LogEntry bytes. */
  readonly #encoder: LogEntryEncoder | undefined;

  constructor(
    readonly backend: SinkBackend,
    readonly cutter: EntryCutter,
    /** The attempt's labels (entries.ts `attemptLabels`). */
    readonly labels: Record<string, string>,
    readonly rel: string,
    start: SinkStart,
  ) {
    this.name = `log ${rel}`;
    this.limits = {
      maxBatchCount: backend.maxBatchEntries,
      maxBatchBytes: backend.maxBatchBytes,
      maxPieceBytes: backend.maxPieceBytes,
    };
    this.retry = backend.retry;
    this.#lastMicros = start.lastMicros;
    this.#insertId = insertIds(rel);
    if (start.pending && start.pending.bytes.length > 0) this.#pending = start.pending;
    const widest = {
      timestamp: { seconds: 9_999_999_999, nanos: 999_999_999 },
      insertId: 'f'.repeat(32),
      labels: { ...labels, [L.offset]: '9'.repeat(16), [L.length]: '9'.repeat(16), [L.cr]: 'true' },
      jsonPayload: { fields: { message: { stringValue: '' }, tasklog_bytes: { stringValue: '' } } },
    };
    this.#entryBytes = Buffer.byteLength(JSON.stringify(widest)) + 64;
    this.#encoder = backend.sends === 'protobuf' ? new LogEntryEncoder(labels) : undefined;
  }

  encode(records: LogRecord[], cut: RecordCut): QueuedEntry[] {
    const out: QueuedEntry[] = [];
    this.#take(records, cut === 'end', out);
    if (cut === 'end') {
      // The log ends inside a line stored as hidden parts: that line is complete now.
      const pending = this.#pending;
      this.#pending = undefined;
      if (pending)
        this.#entries(this.cutter.pieces(pending.offset, pending.bytes, false, true), out);
    }
    return out;
  }

  encodeEnd(size: number, sha256: string): QueuedEntry {
    const labels = {
      [L.offset]: String(size),
      [L.length]: '0',
      [L.end]: 'true',
      [L.size]: String(size),
      [L.sha256]: sha256,
    };
    return this.#entry(this.#insertId('end', size, 0), labels, undefined, undefined);
  }

  async send(batch: OutgoingBatch<QueuedEntry>): Promise<void> {
    await this.backend.write(batch.left.map((q) => q.entry));
    batch.left = [];
  }

  failure(err: unknown, sending: 'records' | 'end'): TasklogError {
    return cloudLoggingError(err, this.rel, sending === 'end' ? 'finish' : 'write');
  }

  /**
   * The next entry, stamped, in the form the backend sends: `payload` as its jsonPayload, or
   * without one (the end) an empty textPayload; `labels` after the attempt's.
   */
  #entry(
    insertId: string,
    labels: Record<string, string>,
    payload: Record<string, string> | undefined,
    end: number | undefined,
  ): QueuedEntry {
    this.#lastMicros = Math.max(this.backend.nowMicros(), this.#lastMicros + 1);
    const micros = this.#lastMicros;
    const seconds = Math.floor(micros / 1e6);
    const nanos = (micros % 1e6) * 1000;
    if (this.#encoder) {
      const entry = this.#encoder.encode(
        payload
          ? { seconds, nanos, insertId, labels, payload }
          : { seconds, nanos, insertId, labels, textPayload: '' },
      );
      return { entry, bytes: entryFieldSize(entry), end };
    }
    const entry: ApiEntryOut = {
      timestamp: { seconds, nanos },
      insertId,
      labels: { ...this.labels, ...labels },
      ...(payload ? { jsonPayload: toStruct(payload) } : { textPayload: '' }),
    };
    // The JSON size bounds the protobuf size the service counts; everything but the payload
    // is measured once (labels with the longest offsets), the payload here.
    const bytes = this.#entryBytes + (payload ? Buffer.byteLength(JSON.stringify(payload)) : 0);
    return { entry, bytes, end };
  }

  /**
   * Turns the splitter's records into entries. A record that ends a line (or the log, `final`)
   * is shown with the line's hidden start. Any other record (a flush inside a line, a piece of a
   * line longer than maxPieceBytes) joins the pending line: whole pieces of it are shown, the
   * rest (< maxPieceBytes) is stored as hidden parts, so every byte is durable and Airflow sees
   * long lines cut where a finished log's would be.
   */
  #take(records: LogRecord[], final: boolean, out: QueuedEntry[]): void {
    const maxPieceBytes = this.limits.maxPieceBytes;
    for (const record of records) {
      const whole = this.#pending ? undefined : this.cutter.line(record);
      if (whole) {
        this.#entries([whole], out);
        continue;
      }
      const { bytes, eol } = payloadOf(record);
      const pending = this.#pending;
      this.#pending = undefined;
      const offset = pending ? pending.offset : record.offset;
      const line = pending ? Buffer.concat([pending.bytes, bytes]) : bytes;
      if (eol || final) {
        this.#entries(this.cutter.pieces(offset, line, eol, true), out);
        continue;
      }
      let at = 0;
      while (line.length - at >= maxPieceBytes) {
        const n = this.cutter.fit(line.subarray(at), true);
        this.#entries(this.cutter.pieces(offset + at, line.subarray(at, at + n), false, true), out);
        at += n;
      }
      if (at === line.length) continue;
      // What the pending line held before this record is stored already.
      const from = Math.max(offset + at, record.offset);
      this.#entries(this.cutter.pieces(from, line.subarray(from - offset), false, false), out);
      this.#pending = { offset: offset + at, bytes: line.subarray(at) };
    }
  }

  #entries(pieces: EntryPiece[], out: QueuedEntry[]): void {
    for (const piece of pieces) {
      const id = this.#insertId(piece.visible ? 'record' : 'part', piece.offset, piece.length);
      out.push(this.#entry(id, piece.labels, piece.payload, piece.offset + piece.length));
    }
  }
}

/** A record's bytes without its `\n`, and whether the `\n` follows. */
function payloadOf(record: LogRecord): { bytes: Buffer; eol: boolean } {
  const bytes =
    record.base64 !== undefined
      ? Buffer.from(record.base64, 'base64')
      : Buffer.from(record.text ?? '', 'utf8');
  return { bytes, eol: record.length === bytes.length + 1 };
}
