import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  BackendUnavailableError,
  ConflictError,
  IntegrityError,
  InvalidInputError,
  TasklogError,
} from '../../../packages/core/src/errors.js';
import {
  ChunkedWriter,
  type ChunkSink,
  type ExpectedLog,
  type WrittenLog,
} from '../../../packages/core/src/stores/shared/chunked-writer.js';

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

/** A sink for an in-memory bucket: chunks by offset; finish() joins them and checks the size. */
class MemorySink implements ChunkSink {
  readonly where = 'mem://log';
  readonly chunks = new Map<number, string>();
  /** Every putChunk call, failed ones included. */
  readonly tries: { offset: number; text: string }[] = [];
  failNextPut = false;
  failRemove = false;
  finished: { want: ExpectedLog; own: WrittenLog } | undefined;
  removed = false;

  async putChunk(offset: number, bytes: Buffer): Promise<void> {
    this.tries.push({ offset, text: bytes.toString() });
    if (this.failNextPut) {
      this.failNextPut = false;
      throw new Error('connection reset');
    }
    this.chunks.set(offset, bytes.toString());
  }

  async finish(want: ExpectedLog, own: WrittenLog): Promise<void> {
    const stored = [...this.chunks.values()].join('');
    if (stored.length !== want.size) throw new IntegrityError(`${stored.length} bytes stored`);
    this.finished = { want, own };
  }

  async removeChunks(): Promise<void> {
    if (this.failRemove) throw new Error('delete failed');
    this.removed = true;
  }

  mapError(err: unknown, action: 'flush' | 'finish'): TasklogError {
    if (err instanceof TasklogError) return err;
    return new BackendUnavailableError(`cannot ${action} ${this.where}`, { cause: err });
  }
}

function open(sink: ChunkSink, committed = 0, flushBytes = 10) {
  return new ChunkedWriter(sink, { committed, flushBytes, sha256: true });
}

describe('ChunkedWriter', () => {
  it('stores a chunk by itself once the buffer is full, ending at the last line end', async () => {
    const sink = new MemorySink();
    const writer = open(sink);
    await writer.append(Buffer.from('one\ntwo\nthr'));
    expect([...sink.chunks]).toEqual([[0, 'one\ntwo\n']]);
    expect(writer.committedOffset).toBe(8);
    expect(writer.offset).toBe(11);
  });

  it('stores every buffered byte on flush, unfinished line included', async () => {
    const sink = new MemorySink();
    const writer = open(sink);
    await writer.append(Buffer.from('abc'));
    expect(await writer.flush()).toBe(3);
    expect([...sink.chunks]).toEqual([[0, 'abc']]);
  });

  it('copies appended bytes, so the caller may reuse its buffer', async () => {
    const sink = new MemorySink();
    const writer = open(sink);
    const buf = Buffer.from('abc');
    await writer.append(buf);
    buf.fill(0x78);
    await writer.flush();
    expect(sink.chunks.get(0)).toBe('abc');
  });

  it('runs calls in call order even when the caller does not await them', async () => {
    const sink = new MemorySink();
    const writer = open(sink, 0, 1000);
    const calls = [
      writer.append(Buffer.from('a')),
      writer.flush(),
      writer.append(Buffer.from('b')),
    ];
    calls.push(writer.flush());
    await Promise.all(calls);
    expect(sink.tries).toEqual([
      { offset: 0, text: 'a' },
      { offset: 1, text: 'b' },
    ]);
  });

  it('retries a failed chunk with the same offset and bytes, mapped through mapError', async () => {
    const sink = new MemorySink();
    const writer = open(sink);
    await writer.append(Buffer.from('abc'));
    sink.failNextPut = true;
    await expect(writer.flush()).rejects.toBeInstanceOf(BackendUnavailableError);
    expect(writer.committedOffset).toBe(0);
    await writer.append(Buffer.from('de'));
    await writer.flush();
    expect(sink.tries).toEqual([
      { offset: 0, text: 'abc' },
      { offset: 0, text: 'abc' },
      { offset: 3, text: 'de' },
    ]);
  });

  it('gives finish() its running sha256 when it saw every byte, then removes the chunks', async () => {
    const sink = new MemorySink();
    const writer = open(sink);
    await writer.append(Buffer.from('hello\n'));
    await writer.finish({ size: 6, sha256: sha256('hello\n').toUpperCase() });
    expect(sink.finished).toEqual({
      want: { size: 6, sha256: sha256('hello\n') },
      own: { committed: 6, sha256: sha256('hello\n') },
    });
    expect(sink.removed).toBe(true);
  });

  it('gives finish() no sha256 when it resumed after bytes it never saw', async () => {
    const sink = new MemorySink();
    sink.chunks.set(0, 'abc');
    const writer = open(sink, 3);
    await writer.append(Buffer.from('de'));
    await writer.finish({ size: 5, sha256: sha256('abcde') });
    expect(sink.finished?.own).toEqual({ committed: 5 });
  });

  it('keeps no sha256 when the sink does not ask for one', async () => {
    const sink = new MemorySink();
    const writer = new ChunkedWriter(sink, { committed: 0, flushBytes: 10, sha256: false });
    await writer.finish({ size: 0, sha256: sha256('') });
    expect(sink.finished?.own).toEqual({ committed: 0 });
  });

  it('rejects a malformed expected value with InvalidInputError before storing anything', async () => {
    const sink = new MemorySink();
    const writer = open(sink);
    await writer.append(Buffer.from('abc'));
    await expect(writer.finish({ size: -1, sha256: sha256('') })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
    await expect(writer.finish({ size: 3, sha256: 'abc' })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
    expect(sink.tries).toEqual([]);
  });

  it('stays open after a failed finish, so it can be finished again', async () => {
    const sink = new MemorySink();
    const writer = open(sink);
    await writer.append(Buffer.from('abc'));
    await expect(writer.finish({ size: 4, sha256: sha256('abcd') })).rejects.toBeInstanceOf(
      IntegrityError,
    );
    expect(sink.removed).toBe(false);
    await writer.append(Buffer.from('d'));
    await writer.finish({ size: 4, sha256: sha256('abcd') });
    expect(sink.finished?.own).toEqual({ committed: 4, sha256: sha256('abcd') });
  });

  it('finishes even when removing the chunks fails', async () => {
    const sink = new MemorySink();
    sink.failRemove = true;
    const writer = open(sink);
    await writer.finish({ size: 0, sha256: sha256('') });
    await expect(writer.append(Buffer.from('x'))).rejects.toThrow(
      'writer of mem://log is already finished',
    );
  });

  it('refuses every call after abort with ConflictError and drops unflushed bytes', async () => {
    const sink = new MemorySink();
    const writer = open(sink);
    await writer.append(Buffer.from('abc'));
    await writer.abort();
    await expect(writer.flush()).rejects.toBeInstanceOf(ConflictError);
    await expect(writer.append(Buffer.from('x'))).rejects.toThrow(
      'writer of mem://log is already aborted',
    );
    expect(sink.tries).toEqual([]);
  });
});
