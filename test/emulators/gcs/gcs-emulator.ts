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
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errors, GcsApiError } from './api-error.js';
import { composeObject } from './compose.js';
import {
  FaultInjector,
  type FaultMatch,
  type FaultRule,
  type RandomFaultOptions,
} from './fault-injector.js';
import { checkReadPreconditions, streamMedia } from './media.js';
import { ObjectStore, type ObjectVersion } from './object-store.js';
import { bucketResource, objectResource } from './resources.js';
import { objectFields, Uploads } from './uploads.js';
import {
  ClientAbortedError,
  drain,
  dropConnection,
  parseInt64,
  parsePreconditions,
  type RequestContext,
  readJson,
  respond,
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

export interface RequestLogEntry {
  method: string;
  /** Raw request target: path and query. */
  path: string;
  /** Status sent; 0 when the connection was dropped without an answer. */
  status: number;
}

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

const REQUEST_LOG_LIMIT = 10_000;
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

  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  // Uploads of tens of MB through slow fault paths must not hit Node's default request timeout.
  server.requestTimeout = 0;

  let address: AddressInfo | undefined;
  const baseUrlFor = (req: IncomingMessage) =>
    `http://${req.headers.host ?? `${host}:${address?.port ?? 0}`}`;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const url = new URL(target, 'http://emulator');
    const ctx: RequestContext = { req, res, query: url.searchParams, baseUrl: baseUrlFor(req) };
    const control = url.pathname.startsWith('/_emulator/') || url.pathname === '/_emulator';
    if (!control) {
      // Logged on 'finish' (the answer is handed to the socket, before the client can see it),
      // or on 'close' for answers that never completed.
      let logged = false;
      const log = () => {
        if (logged) return;
        logged = true;
        const status = ctx.dropAnswer || !res.headersSent ? 0 : res.statusCode;
        requestLog.push({ method: req.method ?? 'GET', path: target, status });
        if (requestLog.length > REQUEST_LOG_LIMIT) {
          requestLog.splice(0, requestLog.length - REQUEST_LOG_LIMIT);
        }
      };
      res.once('finish', log);
      res.once('close', log);
    }
    try {
      if (control) return await handleControl(ctx, url.pathname);
      const fault = faults.pick({
        method: req.method ?? 'GET',
        path: target,
        uploadType: url.searchParams.get('uploadType') ?? undefined,
      });
      if (fault) {
        if ('delayMs' in fault) {
          await sleep(fault.delayMs, undefined, { signal: closing.signal });
        } else if ('status' in fault) {
          await drain(req);
          return respondError(ctx, errors.injected(fault.status));
        } else if ('reset' in fault) {
          if (fault.resetAfterCommit) ctx.dropAnswer = true;
          else {
            if (fault.afterBody) await drain(req);
            return dropConnection(ctx);
          }
        } else {
          ctx.truncateAfter = fault.truncateBodyAfter;
        }
      }
      await route(ctx, url.pathname);
    } catch (err) {
      if (err instanceof ClientAbortedError || req.socket.destroyed || closing.signal.aborted) {
        return;
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof GcsApiError) {
        if (err.status === 304) respond(ctx, 304, {});
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
        return respond(ctx, 204, {});
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
        return respond(ctx, 204, {});
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
   * `/_emulator/...`: drive the emulator from another process.
   *   POST   /_emulator/faults         FaultRule as JSON (match.path: substring; match.pathRegExp:
   *                                    pattern source) → { id }
   *   POST   /_emulator/faults/random  RandomFaultOptions → { id }
   *   POST   /_emulator/faults/seed    { seed }
   *   DELETE /_emulator/faults[/ID]    all rules, or one
   *   POST   /_emulator/buckets        { name }
   *   GET    /_emulator/requests       the request log;  DELETE clears it
   */
  async function handleControl(ctx: RequestContext, pathname: string): Promise<void> {
    const method = ctx.req.method ?? 'GET';
    const route = `${method} ${pathname.replace(/\/+$/, '')}`;
    const faultId = /^DELETE \/_emulator\/faults\/(\d+)$/.exec(route);
    if (faultId) {
      await drain(ctx.req);
      return respond(ctx, faults.remove(Number(faultId[1])) ? 204 : 404, {});
    }
    switch (route) {
      case 'POST /_emulator/faults': {
        const handle = faults.add(ruleFromJson(await readJson(ctx.req)));
        return respondJson(ctx, 200, { id: handle.id });
      }
      case 'POST /_emulator/faults/random': {
        const body = await readJson(ctx.req);
        const opts = body as unknown as RandomFaultOptions;
        const match = matchFromJson(body.match);
        const handle = faults.failRandomly({ ...opts, ...(match ? { match } : {}) });
        return respondJson(ctx, 200, { id: handle.id });
      }
      case 'POST /_emulator/faults/seed': {
        faults.seed(Number((await readJson(ctx.req)).seed ?? 0));
        return respond(ctx, 204, {});
      }
      case 'DELETE /_emulator/faults':
        await drain(ctx.req);
        faults.clear();
        return respond(ctx, 204, {});
      case 'POST /_emulator/buckets': {
        const { name } = await readJson(ctx.req);
        if (typeof name !== 'string') throw errors.required('name');
        emulator.createBucket(name);
        return respondJson(ctx, 200, bucketResource(store.getBucket(name), ctx.baseUrl));
      }
      case 'GET /_emulator/requests':
        await drain(ctx.req);
        return respondJson(ctx, 200, requestLog);
      case 'DELETE /_emulator/requests':
        await drain(ctx.req);
        requestLog.length = 0;
        return respond(ctx, 204, {});
      default:
        await drain(ctx.req);
        throw errors.notFound(pathname);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  address = server.address() as AddressInfo;
  const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  const emulator: GcsEmulator = {
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    faults,
    requestLog,
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
    async close() {
      closing.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await store.close();
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

function matchFromJson(value: unknown): FaultMatch | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object') throw errors.invalid('match must be an object');
  const m = value as Record<string, unknown>;
  const match: FaultMatch = {};
  if (typeof m.method === 'string') match.method = m.method;
  if (typeof m.uploadType === 'string') match.uploadType = m.uploadType;
  if (typeof m.path === 'string') match.path = m.path;
  if (typeof m.pathRegExp === 'string') match.path = new RegExp(m.pathRegExp);
  return match;
}

function ruleFromJson(body: Record<string, unknown>): FaultRule {
  const match = matchFromJson(body.match);
  const rule = { ...body, ...(match ? { match } : {}) } as unknown as FaultRule;
  try {
    // Validation happens in FaultInjector.add; a bad rule is the caller's error (400).
    new FaultInjector().add(rule);
  } catch (err) {
    throw errors.invalid(`Invalid fault rule: ${(err as Error).message}`);
  }
  return rule;
}
