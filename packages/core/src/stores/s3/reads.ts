import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { IntegrityError, NotFoundError, OffsetOutOfRangeError } from '../../errors.js';
import type { LogChunk } from '../../store.js';
import { contiguousRun } from '../shared/chunk-layout.js';
import { throwIfAborted } from '../shared/store-checks.js';
import type { S3Context } from './client.js';
import { isMissingKey } from './errors.js';
import { type FinalObject, headFinal } from './final-object.js';
import { type Location, listChunks } from './layout.js';

// Reading a log: the finished object with a ranged GET (or inflated from its start when gzip),
// else the committed chunks of a running attempt, carrying on in the finished object when the
// writer finishes mid-read.

/** The finished log, or else the committed chunks of a running attempt, from `offset`. */
export async function* readLog(
  ctx: S3Context,
  loc: Location,
  offset: number,
  end: number | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<LogChunk> {
  const final = await headFinal(ctx, loc.final, signal);
  if (final) {
    yield* readFinal(ctx, loc, final, offset, end, signal);
    return;
  }
  yield* readChunks(ctx, loc, offset, end, signal);
}

async function* readFinal(
  ctx: S3Context,
  loc: Location,
  final: FinalObject,
  offset: number,
  end: number | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<LogChunk> {
  if (offset > final.size) throw new OffsetOutOfRangeError(offset, final.size);
  const stop = Math.min(end ?? final.size, final.size);
  if (offset >= stop) return;
  if (final.gzip) {
    const res = await getObject(ctx, loc.final, undefined, signal);
    yield* skipAndCap(inflate(res.Body as Readable), offset, stop, signal);
    return;
  }
  // Never a suffix range (`bytes=-N`): s3rver answers those wrong. `bytes=0-0` is another
  // s3rver quirk (it returns the whole object), which skipAndCap's cap absorbs.
  const res = await getObject(ctx, loc.final, `bytes=${offset}-${stop - 1}`, signal);
  yield* skipAndCap(res.Body as Readable, 0, stop - offset, signal, offset);
}

async function* readChunks(
  ctx: S3Context,
  loc: Location,
  offset: number,
  end: number | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<LogChunk> {
  const listed = await listChunks(ctx, loc, signal);
  if (listed.length === 0) {
    const late = await headFinal(ctx, loc.final, signal);
    if (late) {
      yield* readFinal(ctx, loc, late, offset, end, signal);
      return;
    }
    throw new NotFoundError(`no log stored at s3://${ctx.bucket}/${loc.final}`);
  }
  const { chunks, committed } = contiguousRun(listed);
  if (offset > committed) throw new OffsetOutOfRangeError(offset, committed);
  const stop = Math.min(end ?? committed, committed);
  let pos = offset;
  for (const chunk of chunks) {
    const chunkEnd = chunk.offset + chunk.size;
    if (pos >= stop) break;
    if (chunkEnd <= pos) continue;
    const to = Math.min(stop, chunkEnd);
    let res: GetObjectCommandOutput;
    try {
      res = await getObject(
        ctx,
        chunk.key,
        `bytes=${pos - chunk.offset}-${to - chunk.offset - 1}`,
        signal,
      );
    } catch (err) {
      if (!isMissingKey(err)) throw err;
      // A writer finished and deleted its chunks; the finished log holds the same bytes at
      // the same offsets, so the reader carries on there without a gap or a repeat.
      const finished = await headFinal(ctx, loc.final, signal);
      if (!finished) {
        throw new NotFoundError(`log s3://${ctx.bucket}/${loc.final} vanished while being read`, {
          cause: err,
        });
      }
      yield* readFinal(ctx, loc, finished, pos, stop, signal);
      return;
    }
    for await (const piece of skipAndCap(res.Body as Readable, 0, to - pos, signal, pos)) {
      yield piece;
    }
    pos = to;
  }
}

function getObject(
  ctx: S3Context,
  key: string,
  range: string | undefined,
  signal: AbortSignal | undefined,
): Promise<GetObjectCommandOutput> {
  return ctx.client.send(
    new ctx.sdk.GetObjectCommand({
      Bucket: ctx.bucket,
      Key: key,
      ...(range ? { Range: range } : {}),
    }),
    { abortSignal: signal },
  );
}

function inflate(body: Readable): Readable {
  const gunzip = createGunzip();
  body.on('error', (err) => gunzip.destroy(err));
  gunzip.on('close', () => body.destroy());
  return body.pipe(gunzip);
}

/**
 * Yields `body` as log pieces: drops its first `skip` bytes, stops after byte `stop` of the body
 * (destroying the rest, so the connection is released), numbers pieces from `base + skip`.
 */
async function* skipAndCap(
  body: Readable,
  skip: number,
  stop: number,
  signal: AbortSignal | undefined,
  base = 0,
): AsyncGenerator<LogChunk> {
  let pos = 0;
  try {
    for await (const raw of body as AsyncIterable<Uint8Array>) {
      throwIfAborted(signal);
      const from = Math.max(skip - pos, 0);
      const to = Math.min(raw.length, stop - pos);
      if (to > from) yield { offset: base + pos + from, bytes: raw.subarray(from, to) };
      pos += raw.length;
      if (pos >= stop) return;
    }
  } finally {
    body.destroy();
  }
  if (pos < stop) {
    if (base === 0 && skip > pos) throw new OffsetOutOfRangeError(skip, pos);
    throw new IntegrityError(`stored object ended at byte ${base + pos}, before ${base + stop}`);
  }
}
