/**
 * A LogStore of your own: this one keeps logs in memory, which is enough to show the contract.
 * A real backend keeps the same shape: writers that resume at the committed offset after a
 * crash, reads from any offset, `finish()` checking size and sha256, and the coded errors.
 *
 * Check it against the shared contract suite with `npx vitest run examples/custom-store.test.ts`.
 */
import { createHash } from 'node:crypto';
import {
  type AttemptFilter,
  type AttemptKey,
  ConflictError,
  IntegrityError,
  type LogChunk,
  type LogStat,
  type LogStore,
  type LogWriter,
  NotFoundError,
  OffsetOutOfRangeError,
  type ReadOptions,
  type StoreCapabilities,
} from '@tasklog/core';

/** What the store holds for one attempt: its flushed chunks, and whether a writer finished it. */
interface Entry {
  key: AttemptKey;
  chunks: Buffer[];
  size: number;
  complete: boolean;
  sha256?: string;
}

/** One string per attempt, to key a Map. */
const id = (k: AttemptKey) => JSON.stringify([k.dagId, k.runId, k.taskId, k.mapIndex, k.tryNumber]);

export class MemoryStore implements LogStore {
  readonly url = 'memory://';
  // Flushed bytes are readable at once, and a read from offset N skips the chunks before it.
  readonly capabilities: StoreCapabilities = { liveAppend: true, seekableReads: true };
  private readonly entries = new Map<string, Entry>();

  async openWriter(key: AttemptKey): Promise<LogWriter> {
    const entry = this.entries.get(id(key));
    if (entry?.complete) throw new ConflictError(`${id(key)} is already complete`);
    // The attempt exists from now on: a running attempt with nothing flushed yet reads as empty.
    if (!entry) this.entries.set(id(key), { key, chunks: [], size: 0, complete: false });
    return new MemoryWriter(this.entries.get(id(key))!);
  }

  async *read(key: AttemptKey, options: ReadOptions = {}): AsyncGenerator<LogChunk> {
    const entry = this.entries.get(id(key));
    if (!entry) throw new NotFoundError(`no log for ${id(key)}`);
    const offset = options.offset ?? 0;
    if (offset > entry.size) throw new OffsetOutOfRangeError(offset, entry.size);
    const end = Math.min(options.end ?? entry.size, entry.size);
    let start = 0; // where the current chunk starts in the log
    for (const chunk of entry.chunks) {
      options.signal?.throwIfAborted();
      const from = Math.max(offset, start);
      const to = Math.min(end, start + chunk.length);
      if (from < to) yield { offset: from, bytes: chunk.subarray(from - start, to - start) };
      start += chunk.length;
      if (start >= end) break;
    }
  }

  async stat(key: AttemptKey): Promise<LogStat | undefined> {
    const entry = this.entries.get(id(key));
    if (!entry) return undefined;
    const { size, complete, sha256 } = entry;
    return sha256 === undefined ? { size, complete } : { size, complete, sha256 };
  }

  async *list(filter: AttemptFilter): AsyncGenerator<AttemptKey> {
    const fields = Object.entries(filter) as [keyof AttemptKey, unknown][];
    for (const { key } of this.entries.values()) {
      if (fields.every(([field, value]) => value === undefined || key[field] === value)) yield key;
    }
  }

  async delete(key: AttemptKey): Promise<void> {
    this.entries.delete(id(key));
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}
}

class MemoryWriter implements LogWriter {
  committedOffset: number;
  offset: number;
  private pending: Buffer[] = [];
  private closed = false;

  constructor(private readonly entry: Entry) {
    // A new writer continues where the last one's flushes got to; its unflushed bytes are lost.
    this.committedOffset = entry.size;
    this.offset = entry.size;
  }

  async append(bytes: Uint8Array): Promise<void> {
    if (this.closed) throw new ConflictError('the writer is finished or aborted');
    // A copy: the caller may reuse its buffer once append() resolves.
    this.pending.push(Buffer.from(bytes));
    this.offset += bytes.length;
  }

  async flush(): Promise<number> {
    if (this.closed) throw new ConflictError('the writer is finished or aborted');
    if (this.pending.length === 0) return this.committedOffset;
    if (this.entry.complete) throw new ConflictError('another writer completed the log');
    const chunk = Buffer.concat(this.pending);
    this.pending = [];
    this.entry.chunks.push(chunk);
    this.entry.size += chunk.length;
    this.committedOffset = this.entry.size;
    return this.committedOffset;
  }

  async finish(expected: { size: number; sha256: string }): Promise<void> {
    await this.flush();
    const hash = createHash('sha256');
    for (const chunk of this.entry.chunks) hash.update(chunk);
    const sha256 = hash.digest('hex');
    if (this.entry.size !== expected.size || sha256 !== expected.sha256) {
      // The flushed chunks stay: a new writer resumes after them.
      throw new IntegrityError(
        `stored ${this.entry.size} bytes with sha256 ${sha256}, expected ${expected.size} bytes with sha256 ${expected.sha256}`,
      );
    }
    this.entry.complete = true;
    this.entry.sha256 = sha256;
    this.closed = true;
  }

  async abort(): Promise<void> {
    this.pending = [];
    this.offset = this.committedOffset;
    this.closed = true;
  }
}
