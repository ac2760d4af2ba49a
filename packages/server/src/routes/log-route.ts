import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AttemptKey, Catalog, LogChunk, LogStat, PathTemplate } from '@tasklog/core';
import {
  attemptKey,
  formatAttempt,
  IntegrityError,
  InvalidInputError,
  NotFoundError,
  OffsetOutOfRangeError,
  parseIntStrict,
} from '@tasklog/core';
import type { Request, RequestHandler, Response } from 'express';
import { clientGoneSignal } from '../client-gone.js';
import { ifNoneMatchMatches, ifRangeAllows, logEtag } from '../etag.js';
import { sendUnsatisfiableRange } from '../http-errors.js';
import { parseByteRange } from '../http-range.js';
import { acceptsEventStream, type FollowDeps, serveFollow } from '../live/follow-route.js';
import { encodeNdjson } from '../ndjson.js';
import type { StoreResolver } from '../store-resolver.js';
import { queryParam } from './query.js';

export const NDJSON_TYPE = 'application/x-ndjson';

interface LogRequest {
  key: AttemptKey;
  offset: number | undefined;
  ndjson: boolean;
}

/** The attempt an `…/attempts/:tryNumber/log` path (and its `mapIndex` parameter) names. */
export function attemptKeyOf(req: Request): AttemptKey {
  const params = req.params as Record<string, string>;
  const mapIndex = queryParam(req, 'mapIndex');
  return attemptKey({
    dagId: params.dagId,
    runId: params.runId,
    taskId: params.taskId,
    mapIndex: mapIndex === undefined ? -1 : parseIntStrict('mapIndex', mapIndex),
    tryNumber: parseIntStrict('tryNumber', params.tryNumber ?? ''),
  });
}

function parseLogRequest(req: Request): LogRequest {
  const key = attemptKeyOf(req);
  const offsetText = queryParam(req, 'offset');
  const offset = offsetText === undefined ? undefined : parseIntStrict('offset', offsetText);
  if (offset !== undefined && offset < 0) {
    throw new InvalidInputError(`offset must be >= 0, got ${offset}`);
  }
  const format = queryParam(req, 'format');
  if (format !== undefined && format !== 'text' && format !== 'ndjson') {
    throw new InvalidInputError(`format must be "text" or "ndjson", got "${format}"`);
  }
  const ndjson = format === 'ndjson' || (format === undefined && acceptsNdjson(req.get('accept')));
  return { key, offset, ndjson };
}

function acceptsNdjson(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const [type, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    const refused = params.some((p) => /^q=0(\.0*)?$/.test(p));
    return type === NDJSON_TYPE && !refused;
  });
}

/**
 * Pulls the first chunk before any header is written, so a store that fails at once (missing
 * object, offset race, outage) still gets a proper JSON error instead of a cut connection.
 */
async function startReading(chunks: AsyncIterable<LogChunk>): Promise<AsyncIterable<LogChunk>> {
  const it = chunks[Symbol.asyncIterator]();
  const first = await it.next();
  return {
    async *[Symbol.asyncIterator]() {
      try {
        if (first.done) return;
        yield first.value;
        for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
      } finally {
        // An early exit (client gone) must still end the store's read.
        await it.return?.();
      }
    },
  };
}

/**
 * Checks that chunks are contiguous from `start`, cuts them at `end` (exclusive) and, when `end`
 * is given, fails when the store delivers fewer bytes than it promised through stat().
 */
export async function* checkedChunks(
  chunks: AsyncIterable<LogChunk>,
  start: number,
  end: number | undefined,
): AsyncGenerator<LogChunk> {
  let at = start;
  for await (const chunk of chunks) {
    if (chunk.offset !== at) {
      throw new IntegrityError(`store returned a chunk at offset ${chunk.offset}, expected ${at}`);
    }
    let bytes = chunk.bytes;
    if (end !== undefined && at + bytes.length > end) bytes = bytes.subarray(0, end - at);
    if (bytes.length > 0) yield { offset: at, bytes };
    at += bytes.length;
    if (end !== undefined && at >= end) return;
  }
  if (end !== undefined && at < end) {
    throw new IntegrityError(`store ended the log at byte ${at}, but reported ${end} bytes`);
  }
}

async function* bytesOf(chunks: AsyncIterable<LogChunk>): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) yield chunk.bytes;
}

function etagFor(stat: LogStat, catalogSha: string | null, catalogSize: number | null) {
  if (!stat.complete) return undefined;
  if (catalogSha && (catalogSize === null || catalogSize === stat.size)) return logEtag(catalogSha);
  return stat.sha256 ? logEtag(stat.sha256) : undefined;
}

const isTrue = (value: string | undefined) => value === 'true' || value === '1';

const rfc5987 = (text: string) =>
  encodeURIComponent(text).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );

/**
 * `Content-Disposition` of a download: `<dag>__<run>__<task>__<try>.log` (the map index before the
 * try for a mapped task). Characters a quoted filename cannot hold plainly become `_` there, and
 * the exact name goes in `filename*` (RFC 6266).
 */
function attachment(key: AttemptKey): string {
  const map = key.mapIndex >= 0 ? `__${key.mapIndex}` : '';
  const name = `${key.dagId}__${key.runId}__${key.taskId}${map}__${key.tryNumber}.log`;
  const plain = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  if (plain === name) return `attachment; filename="${name}"`;
  return `attachment; filename="${plain}"; filename*=UTF-8''${rfc5987(name)}`;
}

/**
 * A download always has bytes to send, so a socket idle for `ms` has a reader that stopped
 * reading: it is cut. The timeout is the response's only; a kept-alive socket gets none after.
 */
function cutIdleReader(res: Response, ms: number): void {
  const socket = res.socket;
  if (!socket) return;
  const cut = () => socket.destroy();
  socket.setTimeout(ms);
  socket.on('timeout', cut);
  res.once('close', () => {
    socket.setTimeout(0);
    socket.off('timeout', cut);
  });
}

/**
 * `GET /api/v1/dags/:dagId/runs/:runId/tasks/:taskId/attempts/:tryNumber/log` — one attempt's
 * archived log as plain text (with HTTP ranges) or NDJSON, from byte `offset`.
 */
export function logRoute(deps: {
  catalog: Catalog;
  pathTemplate: PathTemplate;
  stores: StoreResolver;
  /** `?follow=true`: live hand-over; without a hub, follow reads the archive only. */
  follow?: Omit<FollowDeps, 'catalog' | 'stores' | 'relativePath'>;
  /** A download the client takes no byte of for this long is cut off; default 30,000 ms. */
  sendTimeoutMs?: number;
}): RequestHandler {
  return async (req, res) => {
    const { key, offset, ndjson } = parseLogRequest(req);
    const follow = queryParam(req, 'follow');
    if (isTrue(follow)) {
      // The path the agent is asked for is rendered from the key, never taken from the catalog
      // row (a worker writes that row): a forged path must not reach another attempt's log.
      const relativePath = deps.pathTemplate.render(key);
      const format =
        queryParam(req, 'format') === undefined && acceptsEventStream(req.get('accept'))
          ? 'sse'
          : ndjson
            ? 'ndjson'
            : 'text';
      await serveFollow(req, res, key, offset, format, {
        ...deps.follow,
        catalog: deps.catalog,
        stores: deps.stores,
        relativePath,
      });
      return;
    }
    const rangeHeader = req.get('range');
    if (rangeHeader !== undefined && offset !== undefined) {
      throw new InvalidInputError('give either the offset parameter or a Range header, not both');
    }
    // Throws InvalidInputError when the configured layout cannot hold this key unambiguously.
    deps.pathTemplate.render(key);

    const signal = clientGoneSignal(res);

    const record = await deps.catalog.get(key);
    const store = await deps.stores.forUrl(record?.storeUrl);
    const stat = await store.stat(key, { signal });
    if (!stat) {
      throw new NotFoundError(
        record
          ? `the archive holds no log for attempt ${formatAttempt(key)} yet`
          : `unknown attempt ${formatAttempt(key)}`,
      );
    }
    const { size, complete } = stat;
    if (offset !== undefined && offset > size) {
      res.setHeader('Content-Range', `bytes */${size}`);
      throw new OffsetOutOfRangeError(offset, size);
    }

    let start = offset ?? 0;
    let end: number | undefined = complete ? size : undefined;
    let status = 200;
    const etag = ndjson ? undefined : etagFor(stat, record?.sha256 ?? null, record?.size ?? null);
    // Collected first and written only once the body can start, so an error answer never
    // carries headers that describe a log body.
    const headers: Record<string, string> = {
      // The body depends on Accept, so shared caches must key on it.
      Vary: 'Accept',
      'Cache-Control': complete ? 'no-cache' : 'no-store',
      'X-Tasklog-Size': String(size),
      'X-Tasklog-Complete': String(complete),
    };
    if (etag) headers.ETag = etag;

    if (etag && ifNoneMatchMatches(req.get('if-none-match'), etag)) {
      res.status(304).set(headers).end();
      return;
    }

    // A running log's Range is answered from the bytes stored so far (its end clipped there), with
    // `*` for the length still unknown; such bytes never change, so a viewer may read any window.
    // Without an ETag, a running log's If-Range never matches and the whole log is sent.
    if (!ndjson && rangeHeader !== undefined && ifRangeAllows(req.get('if-range'), etag)) {
      const range = parseByteRange(rangeHeader, size);
      if (range === 'unsatisfiable') {
        sendUnsatisfiableRange(res, rangeHeader, size);
        return;
      }
      if (range) {
        start = range.start;
        end = range.end + 1;
        status = 206;
        headers['Content-Range'] = `bytes ${range.start}-${range.end}/${complete ? size : '*'}`;
      }
    }
    if (!ndjson && isTrue(queryParam(req, 'download'))) {
      headers['Content-Disposition'] = attachment(key);
    }

    headers['X-Tasklog-Offset'] = String(start);
    if (ndjson) {
      headers['Content-Type'] = NDJSON_TYPE;
    } else {
      headers['Content-Type'] = 'text/plain; charset=utf-8';
      headers['Accept-Ranges'] = 'bytes';
      if (end !== undefined) headers['Content-Length'] = String(end - start);
    }
    if (req.method === 'HEAD') {
      res.status(status).set(headers).end();
      return;
    }

    const source = await startReading(store.read(key, { offset: start, end, signal }));
    res.status(status).set(headers);
    cutIdleReader(res, deps.sendTimeoutMs ?? 30_000);
    const chunks = checkedChunks(source, start, end);
    try {
      if (ndjson) await pipeline(encodeNdjson(chunks, start, complete), res);
      // Two pieces queued at most (Readable.from would hold 16): memory stays flat per download.
      else await pipeline(Readable.from(bytesOf(chunks), { highWaterMark: 2 }), res);
    } catch (err) {
      if (signal.aborted) {
        req.log?.debug({ key }, 'client went away during the log download');
        return;
      }
      throw err;
    }
  };
}
