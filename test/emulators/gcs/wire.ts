/**
 * The GCS emulator's side of the HTTP plumbing: answers in Google's JSON format, bodies as JSON
 * or spooled to files with their hashes, and query parsing. The rest is shared (../shared/).
 */
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BodyTooLargeError,
  ClientAbortedError,
  type HttpExchange,
  readBody,
  writeAnswer,
} from '../shared/http-exchange.js';
import { errors, GcsApiError } from './api-error.js';
import { crc32c } from './crc32c.js';
import type { Preconditions } from './object-store.js';

export interface RequestContext extends HttpExchange {
  query: URLSearchParams;
  /** `http://host:port` as the client addressed us; used in `selfLink` and session URLs. */
  baseUrl: string;
}

const JSON_TYPE = 'application/json; charset=UTF-8';
const MAX_JSON_BODY = 1024 * 1024;

export function respondJson(ctx: RequestContext, status: number, value: unknown): void {
  writeAnswer(ctx, status, { 'Content-Type': JSON_TYPE }, JSON.stringify(value));
}

export function respondError(ctx: RequestContext, err: GcsApiError): void {
  writeAnswer(ctx, err.status, { 'Content-Type': JSON_TYPE, ...err.headers }, JSON.stringify(err));
}

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let body: Buffer;
  try {
    body = await readBody(req, MAX_JSON_BODY);
  } catch (err) {
    if (err instanceof BodyTooLargeError) throw errors.invalid('Request body too large.');
    throw err;
  }
  const text = body.toString('utf8').trim();
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
