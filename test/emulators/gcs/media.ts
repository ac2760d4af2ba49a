/**
 * objects.get with `alt=media` (https://cloud.google.com/storage/docs/json_api/v1/objects/get):
 * single byte ranges, the `x-goog-*` headers clients validate against, and decompressive
 * transcoding of gzip objects for clients that do not accept gzip
 * (https://cloud.google.com/storage/docs/transcoding).
 */
import { createReadStream } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { dropConnection, endSocketAfterFlush, headerValue } from '../shared/http-exchange.js';
import { errors, GcsApiError } from './api-error.js';
import { crc32cToBase64 } from './crc32c.js';
import type { ObjectRecord, ObjectStore } from './object-store.js';
import { objectEtag } from './resources.js';
import { parseInt64, parsePreconditions, type RequestContext } from './wire.js';

export async function streamMedia(
  ctx: RequestContext,
  store: ObjectStore,
  bucket: string,
  name: string,
  headOnly: boolean,
): Promise<void> {
  const generation = parseInt64(ctx.query.get('generation'), 'generation');
  const obj = store.getObject(bucket, name, generation);
  checkReadPreconditions(obj, ctx.query);
  // Pinned in the same tick as the lookup, so a concurrent delete cannot unlink it under us.
  const release = store.acquire(obj);
  try {
    const gzip = obj.contentEncoding === 'gzip';
    const transcode = gzip && !acceptsGzip(headerValue(ctx.req, 'accept-encoding'));
    const headers = mediaHeaders(obj);
    let status = 200;
    let start = 0;
    let end = obj.size - 1;
    if (transcode) {
      // GCS ignores Range while decompressing and cannot know the decompressed length.
      headers.Warning = '214 UploadServer gunzipped';
    } else {
      const range = parseRange(headerValue(ctx.req, 'range'), obj.size);
      if (range === 'unsatisfiable') throw errors.rangeNotSatisfiable(obj.size);
      if (range) {
        status = 206;
        ({ start, end } = range);
        headers['Content-Range'] = `bytes ${start}-${end}/${obj.size}`;
      }
      headers['Content-Length'] = String(end - start + 1);
      if (gzip) headers['Content-Encoding'] = 'gzip';
    }
    if (ctx.dropAnswer || ctx.req.socket.destroyed) return dropConnection(ctx);
    ctx.res.writeHead(status, headers);
    if (ctx.truncateAfter !== undefined) ctx.res.flushHeaders();
    if (headOnly || end < start) {
      if (ctx.truncateAfter !== undefined) endSocketAfterFlush(ctx.res.socket);
      else ctx.res.end();
      return;
    }
    const file = createReadStream(obj.file.path, { start, end });
    let source: Readable = file;
    let decompressing: Promise<void> | undefined;
    if (transcode) {
      const gunzip = createGunzip();
      decompressing = pipeline(file, gunzip).catch(() => {});
      source = gunzip;
    }
    await sendBody(ctx, source, ctx.truncateAfter);
    await decompressing;
  } finally {
    release();
  }
}

/** Copies with backpressure; with `limit`, sends that many bytes and cuts the connection. */
async function sendBody(
  ctx: RequestContext,
  source: Readable,
  limit: number | undefined,
): Promise<void> {
  const { res } = ctx;
  let sent = 0;
  try {
    for await (const chunk of source) {
      let buf = chunk as Buffer;
      if (limit !== undefined && sent + buf.length >= limit) {
        buf = buf.subarray(0, limit - sent);
        if (buf.length) res.write(buf);
        endSocketAfterFlush(res.socket);
        source.destroy();
        return;
      }
      sent += buf.length;
      if (!res.write(buf)) await drained(res);
    }
  } catch (err) {
    source.destroy();
    res.destroy();
    if (err instanceof ResponseClosed) return;
    throw err;
  }
  if (limit !== undefined) endSocketAfterFlush(res.socket);
  else res.end();
}

class ResponseClosed extends Error {}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      res.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      res.off('drain', onDrain);
      reject(new ResponseClosed());
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

function mediaHeaders(obj: ObjectRecord): Record<string, string> {
  const hash = [`crc32c=${crc32cToBase64(obj.crc32c)}`];
  if (obj.md5Hash) hash.push(`md5=${obj.md5Hash}`);
  const headers: Record<string, string> = {
    'Content-Type': obj.contentType ?? 'application/octet-stream',
    'Accept-Ranges': 'bytes',
    'Cache-Control': obj.cacheControl ?? 'private, max-age=0',
    ETag: obj.md5Hash
      ? `"${Buffer.from(obj.md5Hash, 'base64').toString('hex')}"`
      : `"${objectEtag(obj)}"`,
    'Last-Modified': new Date(obj.updated).toUTCString(),
    'X-Goog-Hash': hash.join(','),
    'X-Goog-Generation': String(obj.generation),
    'X-Goog-Metageneration': String(obj.metageneration),
    'X-Goog-Stored-Content-Length': String(obj.size),
    'X-Goog-Stored-Content-Encoding': obj.contentEncoding ?? 'identity',
    'X-Goog-Storage-Class': obj.storageClass,
  };
  if (obj.componentCount !== undefined)
    headers['X-Goog-Component-Count'] = String(obj.componentCount);
  if (obj.contentDisposition) headers['Content-Disposition'] = obj.contentDisposition;
  if (obj.contentLanguage) headers['Content-Language'] = obj.contentLanguage;
  for (const [k, v] of Object.entries(obj.metadata ?? {})) {
    // Header values must be visible ASCII; GCS percent-encodes the rest.
    headers[`X-Goog-Meta-${k}`] = /^[\x20-\x7e]*$/.test(v) ? v : encodeURIComponent(v);
  }
  return headers;
}

function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    if (coding !== 'gzip' && coding !== '*') return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return !q || Number(q.slice(2)) > 0;
  });
}

/**
 * One range per request (`bytes=a-b`, `bytes=a-`, `bytes=-n`); anything else is ignored and the
 * whole object is sent, as HTTP allows. A range that starts at or past the end is unsatisfiable
 * (so is any range on an empty object).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  if (start >= size) return 'unsatisfiable';
  const last = m[2] === '' ? size - 1 : Number(m[2]);
  if (last < start) return undefined;
  return { start, end: Math.min(last, size - 1) };
}

/** Reads honour `ifGenerationMatch` (412) and answer 304 when a `...NotMatch` fails, as GCS. */
export function checkReadPreconditions(obj: ObjectRecord, query: URLSearchParams): void {
  const pre = parsePreconditions(query);
  if (pre.ifGenerationMatch !== undefined && obj.generation !== pre.ifGenerationMatch) {
    throw errors.conditionNotMet();
  }
  if (pre.ifMetagenerationMatch !== undefined && obj.metageneration !== pre.ifMetagenerationMatch) {
    throw errors.conditionNotMet();
  }
  if (
    (pre.ifGenerationNotMatch !== undefined && obj.generation === pre.ifGenerationNotMatch) ||
    (pre.ifMetagenerationNotMatch !== undefined &&
      obj.metageneration === pre.ifMetagenerationNotMatch)
  ) {
    throw new GcsApiError(304, 'notModified', 'Not Modified');
  }
}
