/**
 * objects.insert: `uploadType=media`, `multipart` and `resumable`
 * (https://cloud.google.com/storage/docs/json_api/v1/objects/insert,
 * https://cloud.google.com/storage/docs/performing-resumable-uploads).
 *
 * A request that fails changes nothing: simple uploads are spooled to a temp file and committed
 * in one synchronous step; a resumable chunk is written past the persisted end of the session
 * file and cut off again unless the whole chunk arrived and was accepted.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, unlink, writeFile } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ClientAbortedError, drain, headerValue, writeAnswer } from '../shared/http-exchange.js';
import { errors } from './api-error.js';
import { boundaryOf, parseMultipartFile } from './multipart.js';
import {
  type ExpectedHashes,
  expectedHashes,
  type ObjectFields,
  objectFields,
  requireName,
  stringField,
  verifyHashes,
} from './object-fields.js';
import {
  checkWritePreconditions,
  type ObjectRecord,
  type ObjectStore,
  type Preconditions,
} from './object-store.js';
import { objectResource } from './resources.js';
import {
  ObjectHasher,
  parseGoogHash,
  parseInt64,
  parsePreconditions,
  type RequestContext,
  readJson,
  respondJson,
  spoolBody,
} from './wire.js';

/** Non-final chunks must be multiples of this (256 KiB). */
export const CHUNK_GRANULARITY = 256 * 1024;
/** Sessions live a week, as on GCS. */
const SESSION_TTL_MS = 7 * 24 * 3600 * 1000;
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

interface UploadSession {
  id: string;
  bucket: string;
  name: string;
  createdAt: number;
  path: string;
  /** Bytes 0..persisted-1 are stored. */
  persisted: number;
  hasher: ObjectHasher;
  fields: ObjectFields;
  expected: ExpectedHashes;
  expectedSize?: number;
  preconditions: Preconditions;
  state: 'active' | 'done' | 'cancelled';
  result?: ObjectRecord;
  /** Requests on one session run one at a time. */
  queue: Promise<void>;
}

export class Uploads {
  readonly #sessions = new Map<string, UploadSession>();

  constructor(readonly store: ObjectStore) {}

  /** Resumable upload sessions that are neither finalized nor cancelled. */
  active(): { uploadId: string; bucket: string; name: string }[] {
    return [...this.#sessions.values()]
      .filter((s) => s.state === 'active')
      .map((s) => ({ uploadId: s.id, bucket: s.bucket, name: s.name }));
  }

  /** `POST /upload/storage/v1/b/BUCKET/o?uploadType=...` */
  async insert(ctx: RequestContext, bucket: string): Promise<void> {
    const uploadType = ctx.query.get('uploadType') ?? 'media';
    this.store.getBucket(bucket);
    const pre = parsePreconditions(ctx.query);
    switch (uploadType) {
      case 'media':
        return this.#media(ctx, bucket, pre);
      case 'multipart':
        return this.#multipart(ctx, bucket, pre);
      case 'resumable':
        return this.#startSession(ctx, bucket, pre);
      default:
        throw errors.invalid(`Invalid upload type: ${uploadType}`);
    }
  }

  async #media(ctx: RequestContext, bucket: string, pre: Preconditions): Promise<void> {
    const name = requireName(ctx.query.get('name'));
    const file = this.store.tempPath();
    const hasher = new ObjectHasher();
    const size = await spoolBody(ctx.req, file, (chunk) => hasher.update(chunk));
    const fields: ObjectFields = {
      contentType: headerValue(ctx.req, 'content-type') || DEFAULT_CONTENT_TYPE,
    };
    const contentEncoding = ctx.query.get('contentEncoding');
    if (contentEncoding) fields.contentEncoding = contentEncoding;
    this.#commitFile(ctx, { bucket, name, file, size, hasher, fields, pre, expected: {} });
  }

  async #multipart(ctx: RequestContext, bucket: string, pre: Preconditions): Promise<void> {
    const boundary = boundaryOf(headerValue(ctx.req, 'content-type'));
    if (!boundary) {
      await drain(ctx.req);
      throw errors.invalid(
        'Multipart uploads need a multipart/related Content-Type with a boundary.',
      );
    }
    const spooled = this.store.tempPath();
    await spoolBody(ctx.req, spooled);
    const file = this.store.tempPath();
    try {
      const parts = await parseMultipartFile(spooled, boundary);
      const name = requireName(ctx.query.get('name') ?? stringField(parts.metadata, 'name'));
      const fields = objectFields(parts.metadata);
      fields.contentType ??= parts.mediaContentType || DEFAULT_CONTENT_TYPE;
      const hasher = new ObjectHasher();
      const size = parts.end - parts.start;
      // createReadStream cannot express an empty range; an empty media part is an empty object.
      const media =
        size > 0
          ? createReadStream(spooled, { start: parts.start, end: parts.end - 1 })
          : Readable.from([]);
      await pipeline(
        media,
        new Transform({
          transform(chunk: Buffer, _enc, cb) {
            hasher.update(chunk);
            cb(null, chunk);
          },
        }),
        createWriteStream(file),
      );
      const expected = expectedHashes(parts.metadata);
      this.#commitFile(ctx, { bucket, name, file, size, hasher, fields, pre, expected });
    } catch (err) {
      await unlink(file).catch(() => {});
      throw err;
    } finally {
      await unlink(spooled).catch(() => {});
    }
  }

  #commitFile(
    ctx: RequestContext,
    u: {
      bucket: string;
      name: string;
      file: string;
      size: number;
      hasher: ObjectHasher;
      fields: ObjectFields;
      pre: Preconditions;
      expected: ExpectedHashes;
    },
  ): void {
    const md5Hash = u.hasher.md5.digest('base64');
    try {
      verifyHashes(
        u.hasher.crc,
        md5Hash,
        u.expected,
        parseGoogHash(ctx.req.headers['x-goog-hash']),
      );
      const obj = this.store.commit(
        {
          bucket: u.bucket,
          name: u.name,
          filePath: u.file,
          size: u.size,
          crc32c: u.hasher.crc,
          md5Hash,
          ...u.fields,
        },
        u.pre,
      );
      respondJson(ctx, 200, objectResource(obj, ctx.baseUrl));
    } catch (err) {
      void unlink(u.file).catch(() => {});
      throw err;
    }
  }

  async #startSession(ctx: RequestContext, bucket: string, pre: Preconditions): Promise<void> {
    const meta = await readJson(ctx.req);
    const name = requireName(ctx.query.get('name') ?? stringField(meta, 'name'));
    const fields = objectFields(meta);
    fields.contentType ??= headerValue(ctx.req, 'x-upload-content-type') || DEFAULT_CONTENT_TYPE;
    const contentEncoding = ctx.query.get('contentEncoding');
    if (contentEncoding && !fields.contentEncoding) fields.contentEncoding = contentEncoding;
    const expectedSize = parseInt64(
      headerValue(ctx.req, 'x-upload-content-length') ?? null,
      'X-Upload-Content-Length',
    );
    // Checked now so a doomed upload fails before its bytes are sent, and again at the end.
    checkWritePreconditions(this.store.getBucket(bucket).objects.get(name), pre);
    const id = randomUUID().replaceAll('-', '');
    const session: UploadSession = {
      id,
      bucket,
      name,
      createdAt: Date.now(),
      path: this.store.sessionPath(id),
      persisted: 0,
      hasher: new ObjectHasher(),
      fields,
      expected: expectedHashes(meta),
      ...(expectedSize !== undefined ? { expectedSize } : {}),
      preconditions: pre,
      state: 'active',
      queue: Promise.resolve(),
    };
    await writeFile(session.path, '');
    this.#sessions.set(id, session);
    const location =
      `${ctx.baseUrl}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable` +
      `&name=${encodeURIComponent(name)}&upload_id=${id}`;
    writeAnswer(ctx, 200, { Location: location, 'X-GUploader-UploadID': id });
  }

  /** Any request on a session URL (`...&upload_id=ID`). */
  async session(ctx: RequestContext, uploadId: string): Promise<void> {
    const session = this.#sessions.get(uploadId);
    if (!session || Date.now() - session.createdAt > SESSION_TTL_MS) {
      if (session) this.#forget(session);
      await drain(ctx.req);
      throw errors.uploadNotFound();
    }
    const run = session.queue.then(() => this.#onSession(ctx, session));
    session.queue = run.catch(() => {});
    return run;
  }

  async #onSession(ctx: RequestContext, session: UploadSession): Promise<void> {
    const method = ctx.req.method ?? 'GET';
    if (method === 'DELETE') {
      await drain(ctx.req);
      if (session.state === 'done') return this.#sendResult(ctx, session);
      if (session.state === 'active') {
        session.state = 'cancelled';
        void unlink(session.path).catch(() => {});
      }
      throw errors.uploadCancelled();
    }
    if (method !== 'PUT' && method !== 'POST') {
      await drain(ctx.req);
      throw errors.methodNotAllowed();
    }
    if (session.state === 'cancelled') {
      await drain(ctx.req);
      throw errors.uploadCancelled();
    }
    if (session.state === 'done') {
      await drain(ctx.req);
      return this.#sendResult(ctx, session);
    }

    const range = parseContentRange(headerValue(ctx.req, 'content-range'));
    if (range.kind === 'query') {
      await drain(ctx.req);
      if (range.total !== undefined && range.total === session.persisted) {
        return this.#finalize(ctx, session, session.persisted, undefined);
      }
      if (range.total !== undefined && range.total < session.persisted) {
        throw errors.invalid(
          `Invalid request. The total object size ${range.total} is smaller than the ${session.persisted} bytes already uploaded.`,
        );
      }
      return send308(ctx, session);
    }

    const { first } = range;
    if (first > session.persisted) {
      await drain(ctx.req);
      throw errors.invalid(
        `Invalid request. The upload must continue at byte ${session.persisted}, not ${first}.`,
      );
    }
    let final = range.last === undefined;
    if (range.last !== undefined) {
      const length = range.last - first + 1;
      if (length < 0) {
        await drain(ctx.req);
        throw errors.invalid('Invalid Content-Range header.');
      }
      if (range.total !== undefined && range.last + 1 > range.total) {
        await drain(ctx.req);
        throw errors.invalid('Invalid request. The Content-Range ends past the total object size.');
      }
      final = range.total !== undefined && range.last + 1 === range.total;
      if (
        !final &&
        (length % CHUNK_GRANULARITY !== 0 || (range.last + 1) % CHUNK_GRANULARITY !== 0)
      ) {
        await drain(ctx.req);
        throw errors.invalid(
          `Invalid request. The number of bytes uploaded is required to be equal or greater than ${CHUNK_GRANULARITY}, except for the final request (it's recommended to be the exact multiple of ${CHUNK_GRANULARITY}). The received request contained ${length} bytes, which does not meet this requirement.`,
        );
      }
    }

    const before = { persisted: session.persisted, hasher: session.hasher };
    const written = await this.#receiveChunk(ctx, session, first);
    const rollback = async () => {
      session.persisted = before.persisted;
      session.hasher = before.hasher;
      await truncateTo(session.path, before.persisted);
    };
    const received = written.end - first;
    if (range.last !== undefined && received !== range.last - first + 1) {
      await rollback();
      throw errors.invalid(
        `Invalid request. The request body had ${received} bytes but Content-Range announced ${range.last - first + 1}.`,
      );
    }
    const end = Math.max(session.persisted, written.end);
    if (final && range.total !== undefined && range.total !== end) {
      await rollback();
      throw errors.invalid(
        `Invalid request. The object would be ${end} bytes but Content-Range announced ${range.total}.`,
      );
    }
    session.persisted = end;
    session.hasher = written.hasher;
    if (!final) return send308(ctx, session);
    try {
      this.#finalize(ctx, session, end, parseGoogHash(ctx.req.headers['x-goog-hash']));
    } catch (err) {
      await rollback();
      throw err;
    }
  }

  /** Writes the body past `session.persisted`; bytes before it were stored already and are skipped. */
  async #receiveChunk(
    ctx: RequestContext,
    session: UploadSession,
    first: number,
  ): Promise<{ end: number; hasher: ObjectHasher }> {
    const hasher = new ObjectHasher(session.hasher.md5.copy());
    hasher.crc = session.hasher.crc;
    const fh = await open(session.path, 'r+');
    let pos = first;
    try {
      for await (const data of ctx.req) {
        let buf = data as Buffer;
        const next = pos + buf.length;
        if (next > session.persisted) {
          if (pos < session.persisted) {
            buf = buf.subarray(session.persisted - pos);
            pos = session.persisted;
          }
          let off = 0;
          while (off < buf.length) {
            const { bytesWritten } = await fh.write(buf, off, buf.length - off, pos + off);
            off += bytesWritten;
          }
          hasher.update(buf);
        }
        pos = next;
      }
      if (!ctx.req.complete) throw new Error('request body ended early');
    } catch (cause) {
      await fh.truncate(session.persisted).catch(() => {});
      throw new ClientAbortedError({ cause });
    } finally {
      await fh.close();
    }
    return { end: pos, hasher };
  }

  #finalize(
    ctx: RequestContext,
    session: UploadSession,
    size: number,
    requestHashes: ExpectedHashes | undefined,
  ): void {
    if (session.expectedSize !== undefined && session.expectedSize !== size) {
      throw errors.invalid(
        `Invalid request. The upload is ${size} bytes but X-Upload-Content-Length announced ${session.expectedSize}.`,
      );
    }
    const md5Hash = session.hasher.md5.copy().digest('base64');
    verifyHashes(session.hasher.crc, md5Hash, session.expected, requestHashes ?? {});
    const obj = this.store.commit(
      {
        bucket: session.bucket,
        name: session.name,
        filePath: session.path,
        size,
        crc32c: session.hasher.crc,
        md5Hash,
        ...session.fields,
      },
      session.preconditions,
    );
    session.state = 'done';
    session.result = obj;
    this.#sendResult(ctx, session);
  }

  #sendResult(ctx: RequestContext, session: UploadSession): void {
    respondJson(ctx, 200, objectResource(session.result!, ctx.baseUrl));
  }

  #forget(session: UploadSession): void {
    this.#sessions.delete(session.id);
    if (session.state === 'active') void unlink(session.path).catch(() => {});
  }
}

type ContentRange =
  | { kind: 'query'; total?: number }
  | { kind: 'chunk'; first: number; last?: number; total?: number };

// Content-Range forms on a session PUT:
//   bytes */*  and  bytes */T   ask for the status (the latter finishes when T bytes are stored);
//   bytes X-Y/*                 a non-final chunk;  bytes X-Y/T  final when Y+1 = T;
//   bytes X-*/*                 what the Node SDK sends when it streams without a known size:
//                               from X to the end of this body, and done;
//   no header                   a one-shot upload of the whole object.
function parseContentRange(header: string | undefined): ContentRange {
  if (header === undefined) return { kind: 'chunk', first: 0 };
  // `X-(X-1)` is an empty final chunk: what the Node SDK sends for a 0-byte chunked upload.
  const m = /^bytes\s+(?:\*|(\d+)-(-1|\d+|\*))\/(\*|\d+)$/.exec(header.trim());
  if (!m) throw errors.invalid(`Invalid Content-Range header: ${header}`);
  const total = m[3] === '*' ? undefined : Number(m[3]);
  if (m[1] === undefined) return total === undefined ? { kind: 'query' } : { kind: 'query', total };
  const first = Number(m[1]);
  const range: ContentRange = { kind: 'chunk', first };
  if (m[2] !== '*') range.last = Number(m[2]);
  if (total !== undefined) range.total = total;
  return range;
}

function send308(ctx: RequestContext, session: UploadSession): void {
  const headers: Record<string, string> = { 'X-GUploader-UploadID': session.id };
  // GCS sends no Range header until at least one byte is persisted.
  if (session.persisted > 0) headers.Range = `bytes=0-${session.persisted - 1}`;
  writeAnswer(ctx, 308, headers, undefined, 'Resume Incomplete');
}

async function truncateTo(file: string, size: number): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
}
