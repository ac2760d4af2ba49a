import type { Hash } from 'node:crypto';
import type { AttemptKey } from '../../attempt-key.js';
import {
  AbortedError,
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  type TasklogError,
} from '../../errors.js';
import type { LogWriter } from '../../store.js';
import { type LogRecord, RecordSplitter } from '../shared/log-records.js';
import {
  type ApiEntryOut,
  type EntryCutter,
  type EntryPiece,
  insertId,
  L,
  toStruct,
} from './entries.js';
import { cloudLoggingError } from './errors.js';

/** What the writer needs of its store. */
export interface WriterBackend {
  readonly maxBatchEntries: number;
  readonly maxBatchBytes: number;
  /** The clock in µs. */
  nowMicros(): number;
  /** One WriteLogEntries call, retried with backoff; the same entries on every try. */
  write(entries: ApiEntryOut[]): Promise<void>;
}

/** Where a writer starts: what earlier writers of the attempt stored. */
export interface WriterStart {
  committed: number;
  /** sha256 of the bytes before `committed`. */
  hash: Hash;
  /** Newest entry timestamp of the attempt, µs; the writer's entries come after it. */
  lastMicros: number;
  /** The unfinished line's bytes stored only as hidden parts, and where they start. */
  pending: { offset: number; bytes: Buffer } | undefined;
}

/**
 * Queues entries into WriteLogEntries batches (≤ maxBatchEntries entries, ≤ maxBatchBytes
 * estimated bytes); a full batch is sent at once and append() waits for it, so at most one
 * batch is held. No timer: the shipper's flush() decides when a partial batch goes out.
 *
 * Lines: a complete line (or a maxPieceBytes piece of a longer one) becomes an entry Airflow
 * shows. A flush in the middle of a line stores what there is as hidden parts and keeps those
 * bytes (less than maxPieceBytes); when the line ends, one shown entry carries the whole line
 * (see entries.ts). So Airflow shows a running attempt's lines as whole as a
 * finished one's, each once, and never the unfinished last line.
 */
export class CloudLoggingWriter implements LogWriter {
  #committed: number;
  #splitter: RecordSplitter;
  #batch: { entries: ApiEntryOut[]; bytes: number; end: number } = {
    entries: [],
    bytes: 0,
    end: 0,
  };
  #hash: Hash;
  #lastMicros: number;
  /** The current line's bytes that are stored as hidden parts only (Airflow does not show them yet). */
  #pending: { offset: number; bytes: Buffer } | undefined;
  #state: 'open' | 'finished' | 'aborted' = 'open';
  /** A batch that could not be stored even after retries; the writer is then unusable. */
  #failed: TasklogError | undefined;
  #busy: Promise<unknown> = Promise.resolve();
  /** An entry's JSON size without its payload, at most. */
  readonly #entryBytes: number;

  constructor(
    readonly backend: WriterBackend,
    readonly cutter: EntryCutter,
    /** The attempt's labels (entries.ts `attemptLabels`). */
    readonly labels: Record<string, string>,
    readonly key: AttemptKey,
    readonly rel: string,
    readonly maxPieceBytes: number,
    start: WriterStart,
  ) {
    this.#committed = start.committed;
    this.#splitter = new RecordSplitter(start.committed, maxPieceBytes);
    this.#hash = start.hash;
    this.#lastMicros = start.lastMicros;
    this.#batch.end = start.committed;
    if (start.pending && start.pending.bytes.length > 0) this.#pending = start.pending;
    const widest = {
      timestamp: { seconds: 9_999_999_999, nanos: 999_999_999 },
      insertId: 'f'.repeat(32),
      labels: { ...labels, [L.offset]: '9'.repeat(16), [L.length]: '9'.repeat(16), [L.cr]: 'true' },
      jsonPayload: { fields: { message: { stringValue: '' }, tasklog_bytes: { stringValue: '' } } },
    };
    this.#entryBytes = Buffer.byteLength(JSON.stringify(widest)) + 64;
  }

  get committedOffset(): number {
    return this.#committed;
  }

  get offset(): number {
    return this.#splitter.offset + this.#splitter.pending;
  }

  append(bytes: Uint8Array): Promise<void> {
    return this.#serial(async () => {
      this.#checkOpen();
      this.#hash.update(bytes);
      await this.#take(this.#splitter.push(bytes), false);
    });
  }

  flush(): Promise<number> {
    return this.#serial(async () => {
      if (this.#failed) throw this.#failed;
      if (this.#state === 'open') {
        await this.#take(this.#splitter.flush(), false);
        await this.#send();
      }
      return this.#committed;
    });
  }

  finish(expected: { size: number; sha256: string }): Promise<void> {
    return this.#serial(async () => {
      this.#checkOpen();
      await this.#take(this.#splitter.end(), true);
      // The log ends inside a line stored as hidden parts: that line is complete now.
      const pending = this.#pending;
      this.#pending = undefined;
      if (pending)
        await this.#queue(this.cutter.pieces(pending.offset, pending.bytes, false, true));
      await this.#send();
      const size = this.#committed;
      const sha256 = this.#hash.copy().digest('hex');
      if (size !== expected.size || sha256 !== expected.sha256) {
        throw new IntegrityError(
          `log ${this.rel} holds ${size} bytes with sha256 ${sha256}, expected ${expected.size} bytes with sha256 ${expected.sha256}`,
        );
      }
      const end: ApiEntryOut = {
        timestamp: this.#timestamp(),
        insertId: insertId(this.rel, 'end', size, 0),
        labels: {
          ...this.labels,
          [L.offset]: String(size),
          [L.length]: '0',
          [L.end]: 'true',
          [L.size]: String(size),
          [L.sha256]: sha256,
        },
        textPayload: '',
      };
      try {
        await this.backend.write([end]);
      } catch (err) {
        throw cloudLoggingError(err, this.rel, 'finish');
      }
      this.#state = 'finished';
    });
  }

  abort(): Promise<void> {
    this.#state = this.#state === 'finished' ? 'finished' : 'aborted';
    this.#batch = { entries: [], bytes: 0, end: this.#committed };
    return Promise.resolve();
  }

  #checkOpen(): void {
    if (this.#failed) throw this.#failed;
    if (this.#state !== 'open') {
      throw new ConflictError(`writer of ${this.rel} is already ${this.#state}`);
    }
  }

  /** One operation at a time, in call order. */
  #serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#busy.then(op, op);
    this.#busy = run.catch(() => undefined);
    return run;
  }

  #timestamp(): { seconds: number; nanos: number } {
    this.#lastMicros = Math.max(this.backend.nowMicros(), this.#lastMicros + 1);
    const micros = this.#lastMicros;
    return { seconds: Math.floor(micros / 1e6), nanos: (micros % 1e6) * 1000 };
  }

  /**
   * Turns the splitter's records into entries. A record that ends a line (or the log, `final`)
   * is shown with the line's hidden start. Any other record (a flush inside a line, a piece of a
   * line longer than maxPieceBytes) joins the pending line: whole pieces of it are shown, the
   * rest (< maxPieceBytes) is stored as hidden parts, so every byte is durable and Airflow sees
   * long lines cut where a finished log's would be.
   */
  async #take(records: LogRecord[], final: boolean): Promise<void> {
    for (const record of records) {
      const { bytes, eol } = payloadOf(record);
      const pending = this.#pending;
      this.#pending = undefined;
      const offset = pending ? pending.offset : record.offset;
      const line = pending ? Buffer.concat([pending.bytes, bytes]) : bytes;
      if (eol || final) {
        await this.#queue(this.cutter.pieces(offset, line, eol, true));
        continue;
      }
      let at = 0;
      while (line.length - at >= this.maxPieceBytes) {
        const n = this.cutter.fit(line.subarray(at), true);
        await this.#queue(this.cutter.pieces(offset + at, line.subarray(at, at + n), false, true));
        at += n;
      }
      if (at === line.length) continue;
      // What the pending line held before this record is stored already.
      const from = Math.max(offset + at, record.offset);
      await this.#queue(this.cutter.pieces(from, line.subarray(from - offset), false, false));
      this.#pending = { offset: offset + at, bytes: line.subarray(at) };
    }
  }

  async #queue(pieces: EntryPiece[]): Promise<void> {
    for (const piece of pieces) {
      const entry: ApiEntryOut = {
        timestamp: this.#timestamp(),
        insertId: insertId(this.rel, piece.visible ? 'record' : 'part', piece.offset, piece.length),
        labels: { ...this.labels, ...piece.labels },
        jsonPayload: toStruct(piece.payload),
      };
      // The JSON size bounds the protobuf size the service counts; everything but the payload
      // is measured once (labels with the longest offsets), the payload here.
      const bytes = this.#entryBytes + Buffer.byteLength(JSON.stringify(piece.payload));
      if (
        this.#batch.entries.length >= this.backend.maxBatchEntries ||
        this.#batch.bytes + bytes > this.backend.maxBatchBytes
      ) {
        await this.#send();
      }
      this.#batch.entries.push(entry);
      this.#batch.bytes += bytes;
      this.#batch.end = Math.max(this.#batch.end, piece.offset + piece.length);
    }
  }

  /**
   * Sends the batch. When it fails even after retries, the records already cut from the
   * appended bytes cannot be put back, so the writer fails for good: a new writer resumes at
   * committedOffset (and resends, with the same insertIds, whatever this one did store).
   */
  async #send(): Promise<void> {
    const batch = this.#batch;
    if (batch.entries.length === 0) return;
    try {
      await this.backend.write(batch.entries);
    } catch (err) {
      const failure = cloudLoggingError(err, this.rel, 'write');
      if (!(failure instanceof AbortedError)) {
        this.#failed = new BackendUnavailableError(
          `writer of ${this.rel} failed at offset ${this.#committed}; open a new writer to resume (${failure.message})`,
          { cause: failure },
        );
      }
      throw failure;
    }
    this.#committed = batch.end;
    this.#batch = { entries: [], bytes: 0, end: batch.end };
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
