/**
 * The REST routes of the Elasticsearch emulator: cluster-level APIs, index administration
 * (create, exists, get, delete, mappings, refresh) and single documents; `_bulk` and the search
 * APIs live in es-bulk.ts and es-search.ts.
 */
import { drain } from '../shared/http-exchange.js';
import { bulk } from './es-bulk.js';
import { type EsCluster, randomId, shardsInfo } from './es-cluster.js';
import { esErrors } from './es-errors.js';
import { type Ctx, readEsJson, send } from './es-http.js';
import { Mapping } from './es-mapping.js';
import { count, deleteByQuery, search } from './es-search.js';

/**
 * The APIs that take an index expression (`/{expr}/_search`); at the root they act on every
 * index, `_bulk` on the indices its action lines name.
 */
const MULTI_INDEX_APIS: Record<
  string,
  {
    methods: string[];
    run: (ctx: Ctx, cluster: EsCluster, expr: string | undefined) => Promise<void>;
  }
> = {
  _bulk: { methods: ['POST', 'PUT'], run: bulk },
  _search: { methods: ['GET', 'POST'], run: (ctx, c, expr) => search(ctx, c, expr ?? '_all') },
  _count: { methods: ['GET', 'POST'], run: (ctx, c, expr) => count(ctx, c, expr ?? '_all') },
  _refresh: {
    methods: ['GET', 'POST'],
    run: (ctx, c, expr) => refreshApi(ctx, c, expr ?? '_all'),
  },
};

export async function route(ctx: Ctx, cluster: EsCluster, pathname: string): Promise<void> {
  const method = ctx.req.method ?? 'GET';
  let segs: string[];
  try {
    segs = pathname
      .split('/')
      .slice(1)
      .filter((s, i, all) => s !== '' || i < all.length - 1)
      .map(decodeURIComponent);
  } catch {
    throw esErrors.illegalArgument(`invalid path: ${pathname}`);
  }
  if (segs.length === 1 && segs[0] === '') segs = [];
  const allow = (...methods: string[]) => {
    if (!methods.includes(method)) throw esErrors.methodNotAllowed(method, pathname, methods);
  };

  if (segs.length === 0) {
    allow('GET', 'HEAD');
    await drain(ctx.req);
    return send(ctx, 200, cluster.info());
  }
  const [first, second, third] = segs;
  const api = (name: string | undefined) =>
    name !== undefined && Object.hasOwn(MULTI_INDEX_APIS, name)
      ? MULTI_INDEX_APIS[name]
      : undefined;
  // Cluster-level APIs start with `_` (`_all` is an index expression); a multi-index API there
  // acts on every index, below an index expression on the indices it names.
  const atRoot = first!.startsWith('_') && first !== '_all';
  const multi = api(atRoot ? first : second);
  if (multi) {
    allow(...multi.methods);
    return multi.run(ctx, cluster, atRoot ? undefined : first);
  }
  if (atRoot) {
    switch (first) {
      case '_mapping':
        allow('GET');
        await drain(ctx.req);
        return getMapping(ctx, cluster, '_all');
      case '_cluster':
        if (second === 'health') {
          allow('GET');
          await drain(ctx.req);
          return send(ctx, 200, {
            cluster_name: 'tasklog-emulator',
            status: 'green',
            timed_out: false,
            number_of_nodes: 1,
            number_of_data_nodes: 1,
            active_primary_shards: cluster.indices.size,
            active_shards: cluster.indices.size,
          });
        }
        break;
    }
    await drain(ctx.req);
    throw esErrors.noHandler(method, pathname);
  }

  const expr = first!;
  if (segs.length === 1) {
    switch (method) {
      case 'PUT':
      case 'POST':
        if (method === 'POST') throw esErrors.noHandler(method, pathname);
        return createIndexApi(ctx, cluster, expr);
      case 'HEAD': {
        await drain(ctx.req);
        const found = cluster.resolve(expr, { ignoreUnavailable: true }).length > 0;
        return send(ctx, found ? 200 : 404);
      }
      case 'GET': {
        await drain(ctx.req);
        const out: Record<string, unknown> = {};
        for (const index of cluster.resolve(expr)) {
          out[index.name] = {
            aliases: {},
            mappings: index.mapping.toJSON(),
            settings: nestSettings(index.settings),
          };
        }
        return send(ctx, 200, out);
      }
      case 'DELETE': {
        await drain(ctx.req);
        for (const index of cluster.resolve(expr)) {
          index.close();
          cluster.indices.delete(index.name);
        }
        return send(ctx, 200, { acknowledged: true });
      }
      default:
        throw esErrors.methodNotAllowed(method, pathname, ['GET', 'HEAD', 'PUT', 'DELETE']);
    }
  }
  switch (second) {
    case '_delete_by_query':
      allow('POST');
      return deleteByQuery(ctx, cluster, expr);
    case '_mapping':
      if (method === 'GET') {
        await drain(ctx.req);
        return getMapping(ctx, cluster, expr);
      }
      allow('PUT', 'POST');
      return putMapping(ctx, cluster, expr);
    case '_doc':
    case '_create': {
      if (segs.length > 3) break;
      const id = third;
      if (second === '_create' || ctx.query.get('op_type') === 'create') {
        if (id === undefined) throw esErrors.noHandler(method, pathname);
        allow('PUT', 'POST');
        return indexDoc(ctx, cluster, expr, id, 'create');
      }
      if (id === undefined) {
        allow('POST');
        return indexDoc(ctx, cluster, expr, undefined, 'index');
      }
      if (method === 'GET' || method === 'HEAD') {
        await drain(ctx.req);
        return getDoc(ctx, cluster, expr, id);
      }
      if (method === 'DELETE') {
        await drain(ctx.req);
        return deleteDoc(ctx, cluster, expr, id);
      }
      allow('PUT', 'POST');
      return indexDoc(ctx, cluster, expr, id, 'index');
    }
  }
  await drain(ctx.req);
  throw esErrors.noHandler(method, pathname);
}

// --- indices ---------------------------------------------------------------------------------

async function createIndexApi(ctx: Ctx, cluster: EsCluster, name: string): Promise<void> {
  const body = await readEsJson(ctx);
  const index = cluster.createIndex(name, body as { settings?: unknown; mappings?: unknown });
  send(ctx, 200, { acknowledged: true, shards_acknowledged: true, index: index.name });
}

function getMapping(ctx: Ctx, cluster: EsCluster, expr: string): void {
  const out: Record<string, unknown> = {};
  for (const index of cluster.resolve(expr)) out[index.name] = { mappings: index.mapping.toJSON() };
  send(ctx, 200, out);
}

async function putMapping(ctx: Ctx, cluster: EsCluster, expr: string): Promise<void> {
  const body = await readEsJson(ctx);
  const targets = cluster.resolve(expr);
  // All or nothing: check every index before changing any.
  for (const index of targets) {
    const probe = new Mapping();
    for (const [path, field] of index.mapping.fields) probe.fields.set(path, { ...field });
    probe.merge(body);
  }
  for (const index of targets) index.mapping.merge(body);
  send(ctx, 200, { acknowledged: true });
}

async function refreshApi(ctx: Ctx, cluster: EsCluster, expr: string): Promise<void> {
  await drain(ctx.req);
  const targets = cluster.resolve(expr, { ignoreUnavailable: expr === '_all' });
  for (const index of targets) index.refresh();
  send(ctx, 200, {
    _shards: { total: targets.length * 2, successful: targets.length, failed: 0 },
  });
}

// --- documents -------------------------------------------------------------------------------

async function indexDoc(
  ctx: Ctx,
  cluster: EsCluster,
  indexName: string,
  id: string | undefined,
  opType: 'index' | 'create',
): Promise<void> {
  const source = await readEsJson(ctx);
  const index = cluster.writeIndex(indexName);
  const docId = id ?? randomId();
  const result = index.put(docId, source, opType);
  const forced = await cluster.honourRefresh(ctx.query, [index]);
  send(ctx, result.status, {
    _index: index.name,
    _id: docId,
    _version: result.version,
    result: result.result,
    ...(forced ? { forced_refresh: true } : {}),
    _shards: shardsInfo(),
    _seq_no: result.seqNo,
    _primary_term: 1,
  });
}

function getDoc(ctx: Ctx, cluster: EsCluster, indexName: string, id: string): void {
  const index = cluster.indices.get(indexName);
  if (!index) throw esErrors.indexNotFound(indexName);
  const doc = index.get(id);
  if (!doc) {
    send(ctx, 404, { _index: index.name, _id: id, found: false });
    return;
  }
  send(ctx, 200, {
    _index: index.name,
    _id: id,
    _version: doc.version,
    _seq_no: doc.seqNo,
    _primary_term: 1,
    found: true,
    _source: doc.source,
  });
}

async function deleteDoc(
  ctx: Ctx,
  cluster: EsCluster,
  indexName: string,
  id: string,
): Promise<void> {
  const index = cluster.indices.get(indexName);
  if (!index) throw esErrors.indexNotFound(indexName);
  const result = index.delete(id);
  await cluster.honourRefresh(ctx.query, [index]);
  send(ctx, result.status, {
    _index: index.name,
    _id: id,
    _version: result.version,
    result: result.result,
    _shards: shardsInfo(),
    _seq_no: result.seqNo,
    _primary_term: 1,
  });
}

function nestSettings(flat: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split('.');
    let level = out;
    for (const part of parts.slice(0, -1)) {
      level[part] ??= {};
      level = level[part] as Record<string, unknown>;
    }
    level[parts.at(-1)!] = String(value);
  }
  return out;
}
