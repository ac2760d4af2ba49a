/**
 * A wire-level emulator of the Google Cloud Storage JSON API, enough for `@google-cloud/storage`
 * and other standard clients: buckets get/insert/list/delete; objects insert (media, multipart,
 * resumable), get (metadata and media with ranges), list, compose, patch and delete; Google's
 * JSON errors; and per-request fault injection.
 *
 * Paths are accepted with and without the `/storage/v1` prefix: with `STORAGE_EMULATOR_HOST`
 * the Node SDK calls `/b/...`. Uploads go to `/upload/storage/v1/b/...` or, as Google's own CLI
 * sends resumable ones, `/resumable/upload/storage/v1/b/...`.
 * Reference: https://cloud.google.com/storage/docs/json_api/v1
 */
import { mkdtemp } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { serveEmulator } from '../shared/emulator-server.js';
import { FaultInjector } from '../shared/fault-injector.js';
import { applyHttpFault, faultControl, isControlPath } from '../shared/faults.js';
import { cannotAnswer, drain, writeAnswer } from '../shared/http-exchange.js';
import { type HttpRequestLogEntry, logHttpRequest } from '../shared/request-log.js';
import { errors, GcsApiError } from './api-error.js';
import { composeObject } from './compose.js';
import { checkReadPreconditions, streamMedia } from './media.js';
import { objectFields } from './object-fields.js';
import { ObjectStore, type ObjectVersion } from './object-store.js';
import { bucketResource, objectResource } from './resources.js';
import { Uploads } from './uploads.js';
import {
  parseInt64,
  parsePreconditions,
  type RequestContext,
  readJson,
  respondError,
  respondJson,
} from './wire.js';

export interface GcsEmulatorOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Port; default 0 (any free port). */
  port?: number;
  /** Folder under which a fresh temp folder holds object bytes; default the OS temp folder. */
  dataDir?: string;
}

export type RequestLogEntry = HttpRequestLogEntry;

export interface GcsEmulator {
  /** `http://HOST:PORT`, to pass as `apiEndpoint`. */
  readonly url: string;
  readonly port: number;
  readonly faults: FaultInjector;
  /** Creates a bucket; a no-op when it exists. */
  createBucket(name: string): void;
  /** Stops listening, drops open connections and removes the data folder. */
  close(): Promise<void>;
  /** The last 10,000 requests, oldest first (control requests under `/_emulator` excluded). */
  readonly requestLog: RequestLogEntry[];
  /** Every state (generation, metageneration, custom metadata) an object has had, oldest first. */
  objectVersions(bucket: string, name: string): ObjectVersion[];
  /** Resumable upload sessions still open (neither finalized nor cancelled). */
  activeSessions(): { uploadId: string; bucket: string; name: string }[];
}

const BUCKET_NAME = /^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$/;

export async function startGcsEmulator(options: GcsEmulatorOptions = {}): Promise<GcsEmulator> {
  const host = options.host ?? '127.0.0.1';
  const root = await mkdtemp(path.join(options.dataDir ?? tmpdir(), 'gcs-emulator-'));
  const store = new ObjectStore(root);
  await store.init();
  const uploads = new Uploads(store);
  const faults = new FaultInjector();
  const requestLog: RequestLogEntry[] = [];
  const closing = new AbortController();

  const baseUrlFor = (req: IncomingMessage) =>
    `http://${req.headers.host ?? `${host}:${emulator.port}`}`;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const url = new URL(target, 'http://emulator');
    const ctx: RequestContext = { req, res, query: url.searchParams, baseUrl: baseUrlFor(req) };
    const control = isControlPath(url.pathname);
    if (!control) logHttpRequest(requestLog, ctx);
    try {
      if (control) return await handleControl(ctx, url.pathname);
      const fault = faults.pick({
        method: req.method ?? 'GET',
        path: target,
        uploadType: url.searchParams.get('uploadType') ?? undefined,
      });
      const answerStatus = (status: number) => respondError(ctx, errors.injected(status));
      if (await applyHttpFault(ctx, fault, answerStatus, closing.signal)) return;
      await route(ctx, url.pathname);
    } catch (err) {
      if (cannotAnswer(err, ctx, closing.signal)) return;
      if (err instanceof GcsApiError) {
        if (err.status === 304) writeAnswer(ctx, 304, {});
        else respondError(ctx, err);
        return;
      }
      respondError(ctx, new GcsApiError(500, 'internalError', `Internal error: ${String(err)}`));
    }
  }

  async function route(ctx: RequestContext, pathname: string): Promise<void> {
    const method = ctx.req.method ?? 'GET';
    let segs = pathname.split('/').slice(1);
    let api: 'json' | 'upload' | 'download' = 'json';
    // Google's Python clients (gcloud storage, apitools) start resumable uploads at
    // `/resumable/upload/storage/v1/b/...`; GCS routes that like `/upload/storage/v1/b/...`.
    if (segs[0] === 'resumable' && segs[1] === 'upload') segs = segs.slice(1);
    if (segs[0] === 'upload' || segs[0] === 'download') {
      api = segs[0];
      segs = segs.slice(1);
    }
    if (segs[0] === 'storage' && segs[1] === 'v1') segs = segs.slice(2);
    if (segs.at(-1) === '' && segs.length > 1) segs = segs.slice(0, -1);
    if (segs[0] !== 'b') {
      await drain(ctx.req);
      throw errors.notFound(pathname);
    }
    const decoded = segs.map(decodeSegment);
    const bucket = decoded[1];

    if (api === 'upload') {
      if (bucket === undefined || segs[2] !== 'o' || segs.length !== 3) {
        await drain(ctx.req);
        throw errors.notFound(pathname);
      }
      const uploadId = ctx.query.get('upload_id');
      if (uploadId) return uploads.session(ctx, uploadId);
      if (method !== 'POST') {
        await drain(ctx.req);
        throw errors.methodNotAllowed();
      }
      return uploads.insert(ctx, bucket);
    }

    if (bucket === undefined) return bucketsCollection(ctx, method);
    if (segs.length === 2) return bucketItem(ctx, method, bucket);
    if (segs[2] !== 'o') {
      await drain(ctx.req);
      throw errors.notImplemented(`/b/BUCKET/${segs[2]}`);
    }
    if (segs.length === 3) {
      await drain(ctx.req);
      if (method !== 'GET') throw errors.methodNotAllowed();
      return listObjects(ctx, bucket);
    }
    let nameSegs = decoded.slice(3);
    if (method === 'POST' && nameSegs.length >= 2 && nameSegs.at(-1) === 'compose') {
      nameSegs = nameSegs.slice(0, -1);
      const body = await readJson(ctx.req);
      const obj = await composeObject(store, bucket, nameSegs.join('/'), body, ctx.query);
      return respondJson(ctx, 200, objectResource(obj, ctx.baseUrl));
    }
    const verb = nameSegs.length >= 2 ? nameSegs.at(-2) : undefined;
    if (verb === 'copyTo' || verb === 'rewriteTo' || nameSegs.at(-1) === 'acl') {
      await drain(ctx.req);
      throw errors.notImplemented('objects.copy/rewrite/acl');
    }
    const name = nameSegs.join('/');
    switch (method) {
      case 'GET':
      case 'HEAD': {
        await drain(ctx.req);
        if (api === 'download' || ctx.query.get('alt') === 'media') {
          return streamMedia(ctx, store, bucket, name, method === 'HEAD');
        }
        const generation = parseInt64(ctx.query.get('generation'), 'generation');
        const obj = store.getObject(bucket, name, generation);
        checkReadPreconditions(obj, ctx.query);
        return respondJson(ctx, 200, objectResource(obj, ctx.baseUrl));
      }
      case 'DELETE': {
        await drain(ctx.req);
        const generation = parseInt64(ctx.query.get('generation'), 'generation');
        store.delete(bucket, name, parsePreconditions(ctx.query), generation);
        return writeAnswer(ctx, 204, {});
      }
      case 'PATCH':
      case 'PUT': {
        const body = await readJson(ctx.req);
        const fields = objectFields(body);
        const patch = { ...fields, ...nullsOf(body) };
        const obj = store.patch(bucket, name, patch, parsePreconditions(ctx.query));
        return respondJson(ctx, 200, objectResource(obj, ctx.baseUrl));
      }
      default:
        await drain(ctx.req);
        throw errors.methodNotAllowed();
    }
  }

  async function bucketsCollection(ctx: RequestContext, method: string): Promise<void> {
    if (method === 'GET') {
      await drain(ctx.req);
      const items = store.listBuckets().map((b) => bucketResource(b, ctx.baseUrl));
      return respondJson(ctx, 200, { kind: 'storage#buckets', ...(items.length ? { items } : {}) });
    }
    if (method !== 'POST') {
      await drain(ctx.req);
      throw errors.methodNotAllowed();
    }
    const body = await readJson(ctx.req);
    if (!ctx.query.get('project')) throw errors.required('project');
    const name = body.name;
    if (typeof name !== 'string' || !name) throw errors.required('name');
    if (!BUCKET_NAME.test(name)) throw errors.invalid(`Invalid bucket name: '${name}'`);
    return respondJson(ctx, 200, bucketResource(store.createBucket(name), ctx.baseUrl));
  }

  async function bucketItem(ctx: RequestContext, method: string, bucket: string): Promise<void> {
    await drain(ctx.req);
    switch (method) {
      case 'GET':
        return respondJson(ctx, 200, bucketResource(store.getBucket(bucket), ctx.baseUrl));
      case 'DELETE':
        store.deleteBucket(bucket);
        return writeAnswer(ctx, 204, {});
      default:
        throw errors.notImplemented(`${method} on a bucket`);
    }
  }

  function listObjects(ctx: RequestContext, bucket: string): void {
    const q = ctx.query;
    const maxResultsRaw = parseInt64(q.get('maxResults'), 'maxResults');
    if (maxResultsRaw !== undefined && maxResultsRaw < 0) {
      throw errors.invalid(`Invalid value for maxResults: ${maxResultsRaw}`);
    }
    // GCS caps a page at 1000 entries whatever is asked.
    const maxResults = !maxResultsRaw || maxResultsRaw > 1000 ? 1000 : maxResultsRaw;
    const optional = (key: string) => q.get(key) || undefined;
    const page = store.list(bucket, {
      maxResults,
      prefix: optional('prefix'),
      delimiter: optional('delimiter'),
      pageToken: optional('pageToken'),
      startOffset: optional('startOffset'),
      endOffset: optional('endOffset'),
      includeTrailingDelimiter: q.get('includeTrailingDelimiter') === 'true',
    });
    const body: Record<string, unknown> = { kind: 'storage#objects' };
    if (page.prefixes.length) body.prefixes = page.prefixes;
    if (page.items.length) body.items = page.items.map((o) => objectResource(o, ctx.baseUrl));
    if (page.nextPageToken) body.nextPageToken = page.nextPageToken;
    respondJson(ctx, 200, body);
  }

  /**
   * `/_emulator/...`: drive the emulator from another process: the shared fault and request-log
   * routes (../shared/faults.ts), and
   *   POST   /_emulator/buckets        { name }
   */
  async function handleControl(ctx: RequestContext, pathname: string): Promise<void> {
    const route = `${ctx.req.method ?? 'GET'} ${pathname.replace(/\/+$/, '')}`;
    const shared = await faultControl(
      ctx,
      route,
      { faults, requestLog },
      () => readJson(ctx.req),
      errors.invalid,
    );
    if (shared) {
      if (shared.body === undefined) return writeAnswer(ctx, shared.status, {});
      return respondJson(ctx, shared.status, shared.body);
    }
    if (route === 'POST /_emulator/buckets') {
      const { name } = await readJson(ctx.req);
      if (typeof name !== 'string') throw errors.required('name');
      emulator.createBucket(name);
      return respondJson(ctx, 200, bucketResource(store.getBucket(name), ctx.baseUrl));
    }
    await drain(ctx.req);
    throw errors.notFound(pathname);
  }

  // The data folder goes with the emulator, also with one that could not start.
  const release = () => store.close();
  const emulator: GcsEmulator = {
    ...(await serveEmulator(handle, options, { faults, requestLog, closing, release })),
    objectVersions: (bucket, name) =>
      store.history.filter((v) => v.bucket === bucket && v.name === name),
    activeSessions: () => uploads.active(),
    createBucket(name: string) {
      if (!BUCKET_NAME.test(name)) throw new RangeError(`invalid bucket name: ${name}`);
      try {
        store.getBucket(name);
      } catch {
        store.createBucket(name);
      }
    },
  };
  return emulator;
}

function decodeSegment(seg: string): string {
  try {
    return decodeURIComponent(seg);
  } catch {
    throw errors.invalid(`Invalid URL path segment: ${seg}`);
  }
}

/** PATCH semantics: a field set to null is removed. */
function nullsOf(body: Record<string, unknown>): Record<string, null> {
  const out: Record<string, null> = {};
  for (const [k, v] of Object.entries(body)) if (v === null) out[k] = null;
  if (body.metadata && typeof body.metadata === 'object') {
    // Keep null values inside `metadata`: they delete single keys.
    Object.assign(out, { metadata: body.metadata });
  }
  return out;
}
