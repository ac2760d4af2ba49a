/**
 * HTTP plumbing shared by the emulator's handlers: one `respond` that honours the injected
 * faults that act on answers, body readers with bounded memory, and query parsing.
 */
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errors, GcsApiError } from './api-error.js';
import { crc32c } from './crc32c.js';
import type { Preconditions } from './object-store.js';

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  query: URLSearchParams;
  /** `http://host:port` as the client addressed us; used in `selfLink` and session URLs. */
  baseUrl: string;
  /** `resetAfterCommit`: carry the request out, then drop the connection instead of answering. */
  dropAnswer?: boolean;
  /** `truncateBodyAfter`: send only this many body bytes, then drop the connection. */
  truncateAfter?: number;
}

/** The client went away mid-request; there is nobody to answer. */
export class ClientAbortedError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('client aborted the request', options);
    this.name = 'ClientAbortedError';
  }
}

const JSON_TYPE = 'application/json; charset=UTF-8';
const MAX_JSON_BODY = 1024 * 1024;

export function respond(
  ctx: RequestContext,
  status: number,
  headers: Record<string, string | number>,
  body?: string | Buffer,
  statusMessage?: string,
): void {
  const { res } = ctx;
  // A client that went away while we worked gets no answer; the log then says 0, not a status
  // nobody received (the request's effects stand, as on a real server).
  if (ctx.dropAnswer || ctx.req.socket.destroyed) {
    dropConnection(ctx);
    return;
  }
  const payload = body === undefined ? undefined : Buffer.from(body);
  const allHeaders: Record<string, string | number> = { ...headers };
  if (payload !== undefined) allHeaders['Content-Length'] = payload.length;
  else if (status !== 204 && status !== 304) allHeaders['Content-Length'] = 0;
  if (statusMessage) res.writeHead(status, statusMessage, allHeaders);
  else res.writeHead(status, allHeaders);
  if (ctx.truncateAfter !== undefined && payload && ctx.truncateAfter < payload.length) {
    res.flushHeaders();
    if (ctx.truncateAfter > 0) res.write(payload.subarray(0, ctx.truncateAfter));
    endSocketAfterFlush(res.socket);
    return;
  }
  res.end(payload);
}

export function respondJson(ctx: RequestContext, status: number, value: unknown): void {
  respond(ctx, status, { 'Content-Type': JSON_TYPE }, JSON.stringify(value));
}

export function respondError(ctx: RequestContext, err: GcsApiError): void {
  respond(ctx, err.status, { 'Content-Type': JSON_TYPE, ...err.headers }, JSON.stringify(err));
}

/** Kills the connection now: the client sees a reset, no status line. */
export function dropConnection(ctx: RequestContext): void {
  ctx.dropAnswer = true;
  ctx.req.socket.destroy();
}

/** Closes after what was written so far has left: the client sees a body cut short. */
export function endSocketAfterFlush(socket: Socket | null): void {
  if (!socket) return;
  socket.once('finish', () => socket.destroy());
  socket.end();
}

export async function drain(req: IncomingMessage): Promise<void> {
  if (req.complete) return;
  try {
    for await (const _ of req) {
      // discard
    }
  } catch (cause) {
    throw new ClientAbortedError({ cause });
  }
}

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    // Keep reading past the limit (without keeping it): leaving the loop early would destroy
    // the socket before we can answer.
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size <= MAX_JSON_BODY) chunks.push(chunk as Buffer);
    }
  } catch (cause) {
    throw new ClientAbortedError({ cause });
  }
  if (size > MAX_JSON_BODY) throw errors.invalid('Request body too large.');
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GcsApiError(400, 'parseError', 'Parse Error');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw errors.invalid('Invalid JSON payload: expected an object.');
  }
  return value as Record<string, unknown>;
}

/** CRC32C and MD5 of a byte stream, in the encodings GCS reports. */
export class ObjectHasher {
  crc = 0;
  readonly md5: Hash;
  constructor(md5?: Hash) {
    this.md5 = md5 ?? createHash('md5');
  }
  update(buf: Buffer): void {
    this.crc = crc32c(buf, this.crc);
    this.md5.update(buf);
  }
}

/** Streams the request body to `file`, feeding `onChunk`; removes the file if the client aborts. */
export async function spoolBody(
  req: IncomingMessage,
  file: string,
  onChunk?: (chunk: Buffer) => void,
): Promise<number> {
  let size = 0;
  try {
    await pipeline(
      req,
      new Transform({
        transform(chunk: Buffer, _enc, cb) {
          size += chunk.length;
          onChunk?.(chunk);
          cb(null, chunk);
        },
      }),
      createWriteStream(file),
    );
    if (!req.complete) throw new Error('request body ended early');
  } catch (cause) {
    await unlink(file).catch(() => {});
    throw new ClientAbortedError({ cause });
  }
  return size;
}

/** Generations are int64; here they fit a double (microseconds since 1970). */
export function parseInt64(value: string | null, name: string): number | undefined {
  if (value === null || value === '') return undefined;
  if (!/^-?\d+$/.test(value)) throw errors.invalid(`Invalid value for ${name}: ${value}`);
  return Number(value);
}

export function parsePreconditions(query: URLSearchParams, prefix = ''): Preconditions {
  const pre: Preconditions = {};
  for (const key of [
    'ifGenerationMatch',
    'ifGenerationNotMatch',
    'ifMetagenerationMatch',
    'ifMetagenerationNotMatch',
  ] as const) {
    const name = prefix ? `${prefix}${key[0]!.toUpperCase()}${key.slice(1)}` : key;
    const value = parseInt64(query.get(name), name);
    if (value !== undefined) pre[key] = value;
  }
  return pre;
}

/** `X-Goog-Hash: crc32c=...,md5=...` as sent by clients on uploads. */
export function parseGoogHash(header: string | string[] | undefined): {
  crc32c?: string;
  md5?: string;
} {
  const out: { crc32c?: string; md5?: string } = {};
  const values = Array.isArray(header) ? header : header ? [header] : [];
  for (const part of values.flatMap((v) => v.split(','))) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    const value = part.slice(eq + 1).trim();
    if (key === 'crc32c') out.crc32c = value;
    else if (key === 'md5') out.md5 = value;
  }
  return out;
}

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
