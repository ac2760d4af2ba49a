/**
 * One index: its mapping, its documents, and near-real-time visibility. Writes change the live
 * documents at once (a realtime GET sees them); searches, counts and delete-by-query see the
 * snapshot taken at the last refresh, which happens every `refresh_interval` (default 1 s), on
 * `_refresh`, or after a write with `?refresh=true`. `?refresh=wait_for` waits for the next one.
 * Reference: https://www.elastic.co/docs/reference/elasticsearch/rest-apis/refresh-parameter
 */
import { randomBytes } from 'node:crypto';
import { esErrors } from './es-errors.js';
import { type IndexedFields, Mapping } from './es-mapping.js';
import type { QueryDoc } from './es-query.js';

export interface StoredDoc extends QueryDoc {
  readonly source: Record<string, unknown>;
  readonly version: number;
  readonly seqNo: number;
}

export interface WriteResult {
  result: 'created' | 'updated' | 'deleted' | 'not_found';
  version: number;
  seqNo: number;
  status: number;
}

export const DEFAULT_MAX_RESULT_WINDOW = 10_000;

/** `1s`, `500ms`, `-1` (never). */
export function parseInterval(value: unknown): number {
  if (value === -1 || value === '-1') return -1;
  const m = /^(\d+)(ms|s|m)?$/.exec(String(value));
  if (!m)
    throw esErrors.illegalArgument(
      `failed to parse setting [index.refresh_interval] with value [${String(value)}] as a time value`,
    );
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
}

export class EsIndex {
  readonly name: string;
  readonly uuid = randomBytes(16).toString('base64url').slice(0, 22);
  readonly createdAt = Date.now();
  readonly mapping = new Mapping();
  readonly settings: Record<string, unknown>;
  readonly maxResultWindow: number;
  readonly #live = new Map<string, StoredDoc>();
  readonly #visible = new Map<string, StoredDoc>();
  /** Writes since the last refresh: the document, or null for a delete. */
  readonly #pending = new Map<string, StoredDoc | null>();
  #visibleInOrder: StoredDoc[] | undefined;
  #generation = 0;
  #seqNo = 0;
  #order = 0;
  #waiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    name: string,
    body: { settings?: unknown; mappings?: unknown },
    defaultRefreshMs: number,
  ) {
    this.name = name;
    const settings = flattenSettings(body.settings);
    const refreshMs =
      settings['index.refresh_interval'] !== undefined
        ? parseInterval(settings['index.refresh_interval'])
        : defaultRefreshMs;
    this.maxResultWindow = Number(settings['index.max_result_window'] ?? DEFAULT_MAX_RESULT_WINDOW);
    this.settings = {
      'index.number_of_shards': '1',
      'index.number_of_replicas': '1',
      'index.uuid': this.uuid,
      'index.provided_name': name,
      'index.creation_date': String(this.createdAt),
      ...settings,
    };
    this.mapping.merge(body.mappings);
    if (refreshMs > 0) {
      this.#timer = setInterval(() => this.refresh(), refreshMs);
      this.#timer.unref();
    }
  }

  /** Number of live documents (searchable or not yet). */
  get liveCount(): number {
    return this.#live.size;
  }

  /** Realtime GET: the live document, refreshed or not. */
  get(id: string): StoredDoc | undefined {
    return this.#live.get(id);
  }

  /** Every live document, in index order. */
  liveDocs(): StoredDoc[] {
    return [...this.#live.values()].sort((a, b) => a.order - b.order);
  }

  /** What a search sees: the documents of the last refresh, in index order. */
  searchable(): StoredDoc[] {
    this.#visibleInOrder ??= [...this.#visible.values()].sort((a, b) => a.order - b.order);
    return this.#visibleInOrder;
  }

  /** Changes whenever a refresh changes what searches see (search results may be cached). */
  get generation(): number {
    return this.#generation;
  }

  /** The live version of a document the search snapshot holds, to detect conflicts. */
  liveVersion(id: string): number | undefined {
    return this.#live.get(id)?.version;
  }

  /** Indexes a document; `create` refuses an existing id. Throws document parsing errors. */
  put(id: string, source: Record<string, unknown>, opType: 'index' | 'create'): WriteResult {
    const existing = this.#live.get(id);
    if (existing && opType === 'create') {
      throw esErrors.versionConflict(this.name, id, existing.version);
    }
    const indexed: IndexedFields = this.mapping.index(source, id);
    const version = (existing?.version ?? 0) + 1;
    const doc: StoredDoc = {
      id,
      source,
      indexed,
      version,
      seqNo: this.#seqNo++,
      order: this.#order++,
    };
    this.#live.set(id, doc);
    this.#pending.set(id, doc);
    return {
      result: existing ? 'updated' : 'created',
      version,
      seqNo: doc.seqNo,
      status: existing ? 200 : 201,
    };
  }

  delete(id: string): WriteResult {
    const existing = this.#live.get(id);
    const seqNo = this.#seqNo++;
    if (!existing) return { result: 'not_found', version: 1, seqNo, status: 404 };
    this.#live.delete(id);
    this.#pending.set(id, null);
    return { result: 'deleted', version: existing.version + 1, seqNo, status: 200 };
  }

  /** Makes every write so far searchable and wakes `refresh=wait_for` requests. */
  refresh(): void {
    if (this.#pending.size > 0) {
      for (const [id, doc] of this.#pending) {
        if (doc) this.#visible.set(id, doc);
        else this.#visible.delete(id);
      }
      this.#pending.clear();
      this.#visibleInOrder = undefined;
      this.#generation++;
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Resolves at the next refresh (scheduled or explicit), like `?refresh=wait_for`. */
  nextRefresh(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const onAbort = () => resolve();
      this.#waiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.refresh();
  }
}

/** `{ index: { refresh_interval: '1s' } }` and `{ 'index.refresh_interval': '1s' }` alike. */
function flattenSettings(settings: unknown, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof settings !== 'object' || settings === null) return out;
  for (const [k, v] of Object.entries(settings)) {
    const key = prefix + k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      Object.assign(out, flattenSettings(v, `${key}.`));
    } else {
      out[key.startsWith('index.') ? key : `index.${key}`] = v;
    }
  }
  return out;
}
