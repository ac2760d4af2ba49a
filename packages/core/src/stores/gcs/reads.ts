import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { FileMetadata } from '@google-cloud/storage';
import {
  AbortedError,
  IntegrityError,
  NotFoundError,
  OffsetOutOfRangeError,
} from '../../errors.js';
import type { LogChunk } from '../../store.js';
import { throwIfAborted } from '../shared/store-checks.js';
import type { Backend } from './client.js';
import { declaredSize, generationOf, META_SIZE } from './final-object.js';
import { type ChunkObject, type Location, listChunks } from './layout.js';

/**
 * Bytes [offset, end) of the finished log, or else of the committed chunks of a running attempt.
 * NotFoundError when the attempt has neither.
 */
export async function* readLog(
  be: Backend,
  loc: Location,
  offset: number,
  end: number | undefined,
  signal?: AbortSignal,
): AsyncGenerator<LogChunk> {
  const final = await be.metadata(loc.final, signal);
  if (final) {
    yield* readFinal(be, loc.final, final, offset, end, signal);
    return;
  }
  const listing = await listChunks(be, loc, signal);
  if (listing.all.length === 0) {
    // The writer may have finished between our two looks.
    const late = await be.metadata(loc.final, signal);
    if (late) {
      yield* readFinal(be, loc.final, late, offset, end, signal);
      return;
    }
    throw new NotFoundError(`no log stored for ${be.describe(loc.final)}`);
  }
  const size = listing.committed;
  if (offset > size) throw new OffsetOutOfRangeError(offset, size);
  const stop = Math.min(end ?? size, size);
  let pos = offset;
  for (const chunk of listing.chunks) {
    if (pos >= stop) return;
    const chunkEnd = chunk.offset + chunk.size;
    if (chunkEnd <= pos) continue;
    try {
      for await (const piece of readChunk(be, chunk, pos, Math.min(stop, chunkEnd), signal)) {
        yield piece;
        pos += piece.bytes.length;
      }
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      // A writer finished and removed its chunks; the final object holds the same bytes at the
      // same offsets, so the reader carries on there without a gap or a repeat.
      const finished = await be.metadata(loc.final, signal);
      if (!finished) {
        throw new NotFoundError(`log ${be.describe(loc.final)} vanished while being read`, {
          cause: err,
        });
      }
      yield* readFinal(be, loc.final, finished, pos, stop, signal);
      return;
    }
  }
}

/** Bytes [from, to) of the log from a chunk; full reads are crc32c-checked by the SDK. */
export async function* readChunk(
  be: Backend,
  chunk: ChunkObject,
  from: number,
  to: number,
  signal?: AbortSignal,
): AsyncGenerator<LogChunk> {
  const file = be.bucket.file(chunk.file.name, {
    generation: generationOf(chunk.file.metadata),
  });
  const whole = from === chunk.offset && to === chunk.offset + chunk.size;
  const stream = whole
    ? file.createReadStream({ validation: 'crc32c' })
    : file.createReadStream({
        start: from - chunk.offset,
        end: to - chunk.offset - 1,
        validation: false,
      });
  yield* pieces(be, stream, from, to, chunk.file.name, signal);
}

/** Bytes [offset, end) of a finished log, decompressing a gzip-encoded one. */
export async function* readFinal(
  be: Backend,
  object: string,
  meta: FileMetadata,
  offset: number,
  end: number | undefined,
  signal?: AbortSignal,
): AsyncGenerator<LogChunk> {
  const file = be.bucket.file(object, { generation: generationOf(meta) });
  const declared = declaredSize(meta);
  if (meta.contentEncoding !== 'gzip') {
    if (offset > declared) throw new OffsetOutOfRangeError(offset, declared);
    const stop = Math.min(end ?? declared, declared);
    if (offset >= stop) return;
    const stream =
      offset === 0 && stop === declared
        ? file.createReadStream({ validation: 'crc32c' })
        : file.createReadStream({ start: offset, end: stop - 1, validation: false });
    yield* pieces(be, stream, offset, stop, object, signal);
    return;
  }
  // Decompressive transcoding: GCS would gunzip a gzip-encoded object for a client that does
  // not accept gzip, and then ignores Range. The SDK asks for the stored bytes and gunzips them
  // itself unless told not to; we take the raw bytes (crc32c-checked against the stored object)
  // and gunzip here, so offsets count uncompressed bytes exactly. There is no seeking inside
  // gzip: reading from offset N decompresses and drops N bytes first.
  const known = meta.metadata?.[META_SIZE] !== undefined;
  if (known && offset > declared) throw new OffsetOutOfRangeError(offset, declared);
  const raw = file.createReadStream({ validation: 'crc32c', decompress: false });
  const gunzip = createGunzip();
  pipeline(raw, gunzip).catch(() => undefined); // errors surface through `gunzip`
  let pos = 0;
  for await (const piece of pieces(be, gunzip, 0, undefined, object, signal)) {
    const bytes = piece.bytes;
    const pieceEnd = pos + bytes.length;
    const from = Math.max(offset, pos);
    const to = end === undefined ? pieceEnd : Math.min(end, pieceEnd);
    if (to > from) yield { offset: from, bytes: bytes.subarray(from - pos, to - pos) };
    pos = pieceEnd;
    if (end !== undefined && pos >= end) return;
  }
  if (offset > pos) throw new OffsetOutOfRangeError(offset, pos);
  if (known && pos !== declared) {
    throw new IntegrityError(
      `${be.describe(object)} decompresses to ${pos} bytes, its metadata says ${declared}`,
    );
  }
}

/** Yields a download stream's bytes as log pieces from `from`, checking it ends at `to`. */
async function* pieces(
  be: Backend,
  stream: Readable,
  from: number,
  to: number | undefined,
  object: string,
  signal?: AbortSignal,
): AsyncGenerator<LogChunk> {
  const onAbort = () =>
    stream.destroy(new AbortedError('operation was aborted', { cause: signal?.reason }));
  signal?.addEventListener('abort', onAbort, { once: true });
  let pos = from;
  try {
    throwIfAborted(signal);
    for await (const buf of stream) {
      const bytes = buf as Buffer;
      if (bytes.length === 0) continue;
      yield { offset: pos, bytes };
      pos += bytes.length;
    }
  } catch (err) {
    throw be.error(err, 'read', object, signal);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stream.destroy();
  }
  if (to !== undefined && pos !== to) {
    throw new IntegrityError(`${be.describe(object)} ended at byte ${pos}, expected ${to}`);
  }
}
