import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  InvalidInputError,
  type TasklogError,
} from '../../../packages/core/src/errors.js';
import {
  type LogRecord,
  recordBytes,
} from '../../../packages/core/src/stores/shared/log-records.js';
import {
  type OutgoingBatch,
  type RecordLimits,
  type RecordSink,
  RecordWriter,
  type SinkRecord,
} from '../../../packages/core/src/stores/shared/record-writer.js';

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

interface Rec extends SinkRecord {
  text: string;
}

/** What a try of the fake service does with a batch. */
type Answer = 'store' | 'fail' | 'fail-transient' | 'store-first-then-fail';

/** A sink for an in-memory service: records are the log's bytes as text, one byte = one byte. */
class MemorySink implements RecordSink<Rec> {
  readonly name = 'log test';
  readonly limits: RecordLimits;
  readonly retry = {
    maxAttempts: 3,
    baseDelayMs: 1,
    maxDelayMs: 2,
    retryable: (err: unknown) => err instanceof Error && err.message === 'transient',
  };
  afterFailedBatch: 'resend' | 'fail' = 'resend';
  readonly stored: string[] = [];
  readonly requests: string[][] = [];
  readonly answers: Answer[] = [];
  cutAt: number | undefined;

  constructor(limits: { maxBatchCount: number; maxBatchBytes: number }) {
    this.limits = { ...limits, maxPieceBytes: 64 };
  }

  encode(records: LogRecord[]): Rec[] {
    return records.map((r) => {
      const text = recordBytes(r).toString();
      return { text, bytes: text.length, end: r.offset + r.length };
    });
  }

  encodeEnd(size: number, sha: string): Rec {
    return { text: `END ${size} ${sha}`, bytes: 1, end: undefined };
  }

  stamp(candidates: readonly Rec[]): number {
    return Math.min(candidates.length, this.cutAt ?? candidates.length);
  }

  async send(batch: OutgoingBatch<Rec>): Promise<void> {
    this.requests.push(batch.left.map((r) => r.text));
    const answer = this.answers.shift() ?? 'store';
    if (answer === 'fail') throw new Error('down');
    if (answer === 'fail-transient') throw new Error('transient');
    if (answer === 'store-first-then-fail') {
      this.stored.push(batch.left[0]!.text);
      batch.left = batch.left.slice(1);
      throw new Error('transient');
    }
    for (const r of batch.left) this.stored.push(r.text);
    batch.left = [];
  }

  failure(err: unknown): TasklogError {
    return new BackendUnavailableError(`cannot write ${this.name}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

const lines = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => `line ${from + i}\n`).join('');

describe('RecordWriter', () => {
  it('sends from append only while more than one batch is queued', async () => {
    const sink = new MemorySink({ maxBatchCount: 3, maxBatchBytes: 1000 });
    const writer = new RecordWriter(sink, { committed: 0 });
    await writer.append(Buffer.from(lines(3)));
    expect(sink.requests).toEqual([]);
    await writer.append(Buffer.from(lines(1, 3)));
    expect(sink.requests).toEqual([['line 0\n', 'line 1\n', 'line 2\n']]);
    expect(writer.committedOffset).toBe(21);
    expect(writer.offset).toBe(28);
    expect(await writer.flush()).toBe(28);
    expect(sink.stored.join('')).toBe(lines(4));
  });

  it('keeps a batch within maxBatchBytes and sends a larger record alone', async () => {
    const sink = new MemorySink({ maxBatchCount: 100, maxBatchBytes: 16 });
    const writer = new RecordWriter(sink, { committed: 0 });
    await writer.append(Buffer.from(`a\nb\n${'x'.repeat(20)}\nc\n`));
    await writer.flush();
    expect(sink.requests).toEqual([['a\n', 'b\n'], [`${'x'.repeat(20)}\n`], ['c\n']]);
  });

  it('lets the sink take fewer records into a batch as it stamps it', async () => {
    const sink = new MemorySink({ maxBatchCount: 10, maxBatchBytes: 1000 });
    sink.cutAt = 2;
    const writer = new RecordWriter(sink, { committed: 0 });
    await writer.append(Buffer.from(lines(5)));
    await writer.flush();
    expect(sink.requests.map((r) => r.length)).toEqual([2, 2, 1]);
  });

  it('retries a retryable failure with backoff and sends again only what is not stored', async () => {
    const sink = new MemorySink({ maxBatchCount: 10, maxBatchBytes: 1000 });
    sink.answers.push('fail-transient', 'store-first-then-fail', 'store');
    const writer = new RecordWriter(sink, { committed: 0 });
    await writer.append(Buffer.from(lines(3)));
    expect(await writer.flush()).toBe(21);
    expect(sink.requests).toEqual([
      ['line 0\n', 'line 1\n', 'line 2\n'],
      ['line 0\n', 'line 1\n', 'line 2\n'],
      ['line 1\n', 'line 2\n'],
    ]);
    expect(sink.stored.join('')).toBe(lines(3));
  });

  it('throws the mapped failure after maxAttempts, commits nothing of the batch, and resends it first', async () => {
    const sink = new MemorySink({ maxBatchCount: 2, maxBatchBytes: 1000 });
    sink.answers.push('fail-transient', 'fail-transient', 'fail-transient');
    const writer = new RecordWriter(sink, { committed: 0 });
    await writer.append(Buffer.from(lines(2)));
    const err = await writer.flush().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toBe('cannot write log test: transient');
    expect(writer.committedOffset).toBe(0);
    await writer.append(Buffer.from(lines(1, 2)));
    expect(await writer.flush()).toBe(21);
    expect(sink.requests.slice(3)).toEqual([['line 0\n', 'line 1\n'], ['line 2\n']]);
    expect(sink.stored.join('')).toBe(lines(3));
  });

  it('fails for good after a failed batch when the sink says so', async () => {
    const sink = new MemorySink({ maxBatchCount: 10, maxBatchBytes: 1000 });
    sink.afterFailedBatch = 'fail';
    const writer = new RecordWriter(sink, { committed: 0 });
    await writer.append(Buffer.from('a\n'));
    await writer.flush();
    sink.answers.push('fail');
    await writer.append(Buffer.from('b\n'));
    await expect(writer.flush()).rejects.toThrow('cannot write log test: down');
    const err = await writer.append(Buffer.from('c')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toBe(
      'writer of log test failed at offset 2; open a new writer to resume (cannot write log test: down)',
    );
    await expect(writer.flush()).rejects.toBe(err);
  });

  it('does not retry a failure the sink calls permanent', async () => {
    const sink = new MemorySink({ maxBatchCount: 10, maxBatchBytes: 1000 });
    sink.answers.push('fail');
    const writer = new RecordWriter(sink, { committed: 0 });
    await writer.append(Buffer.from('x\n'));
    await expect(writer.flush()).rejects.toThrow('cannot write log test: down');
    expect(sink.requests).toHaveLength(1);
  });

  it('finishes with the end record once size and sha256 match', async () => {
    const sink = new MemorySink({ maxBatchCount: 10, maxBatchBytes: 1000 });
    const writer = new RecordWriter(sink, { committed: 0 });
    const log = `${lines(2)}no newline`;
    await writer.append(Buffer.from(log));
    await writer.finish({ size: log.length, sha256: sha256(log).toUpperCase() });
    expect(sink.stored).toEqual(['line 0\n', 'line 1\n', 'no newline', `END 24 ${sha256(log)}`]);
    await expect(writer.append(Buffer.from('more'))).rejects.toThrow(
      new ConflictError('writer of log test is already finished'),
    );
  });

  it('throws IntegrityError and writes no end record when the log differs', async () => {
    const sink = new MemorySink({ maxBatchCount: 10, maxBatchBytes: 1000 });
    const writer = new RecordWriter(sink, { committed: 0 });
    await writer.append(Buffer.from('a\n'));
    await expect(writer.finish({ size: 2, sha256: sha256('b\n') })).rejects.toBeInstanceOf(
      IntegrityError,
    );
    expect(sink.stored).toEqual(['a\n']);
    await expect(writer.finish({ size: -1, sha256: 'x' })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });

  it('reads the committed prefix back at finish when it resumed without its hash', async () => {
    const sink = new MemorySink({ maxBatchCount: 10, maxBatchBytes: 1000 });
    const sizes: number[] = [];
    const writer = new RecordWriter(sink, {
      committed: 2,
      prefix: async (size) => {
        sizes.push(size);
        return { size, sha256: sha256(`a\n${sink.stored.join('')}`) };
      },
    });
    await writer.append(Buffer.from('b\n'));
    await writer.finish({ size: 4, sha256: sha256('a\nb\n') });
    expect(sizes).toEqual([4]);
    expect(sink.stored.at(-1)).toBe(`END 4 ${sha256('a\nb\n')}`);
  });

  it('goes on with the hash of the prefix it is given', async () => {
    const sink = new MemorySink({ maxBatchCount: 10, maxBatchBytes: 1000 });
    const writer = new RecordWriter(sink, {
      committed: 2,
      prefix: createHash('sha256').update('a\n'),
    });
    expect(writer.committedOffset).toBe(2);
    await writer.append(Buffer.from('b\n'));
    await writer.finish({ size: 4, sha256: sha256('a\nb\n') });
    expect(sink.stored).toEqual(['b\n', `END 4 ${sha256('a\nb\n')}`]);
  });

  it('drops what is not sent on abort, keeps what is committed, and refuses more', async () => {
    const sink = new MemorySink({ maxBatchCount: 10, maxBatchBytes: 1000 });
    const writer = new RecordWriter(sink, { committed: 0 });
    await writer.append(Buffer.from('a\n'));
    await writer.flush();
    await writer.append(Buffer.from('b\n'));
    await writer.abort();
    expect(writer.committedOffset).toBe(2);
    expect(sink.stored).toEqual(['a\n']);
    await expect(writer.flush()).rejects.toThrow(
      new ConflictError('writer of log test is already aborted'),
    );
  });

  it('sends records given to sendFirst ahead of the log, without committing bytes', async () => {
    const sink = new MemorySink({ maxBatchCount: 10, maxBatchBytes: 1000 });
    const writer = new RecordWriter(sink, { committed: 0 });
    await writer.sendFirst([{ text: 'HEADER', bytes: 6, end: undefined }]);
    expect(sink.requests).toEqual([['HEADER']]);
    expect(writer.committedOffset).toBe(0);
  });

  it('runs operations one at a time, in call order', async () => {
    const sink = new MemorySink({ maxBatchCount: 1, maxBatchBytes: 1000 });
    const writer = new RecordWriter(sink, { committed: 0 });
    await Promise.all([
      writer.append(Buffer.from('a\nb\n')),
      writer.flush(),
      writer.append(Buffer.from('c\n')),
      writer.flush(),
    ]);
    expect(sink.stored).toEqual(['a\n', 'b\n', 'c\n']);
  });
});
