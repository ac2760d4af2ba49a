/**
 * The emulated cluster's state: its indices (created explicitly or on first write, as with
 * `action.auto_create_index`), index expressions, `?refresh=`, partial bulk failures and the
 * cache of recent query results that the search APIs share.
 */
import { randomBytes } from 'node:crypto';
import { mulberry32 } from '../shared/prng.js';
import { esErrors } from './es-errors.js';
import { EsIndex } from './es-index.js';
import type { Matching } from './es-search.js';

const INDEX_FORBIDDEN = /[\\/*?"<>| ,#:]/;

export interface BulkItemFaultOptions {
  /** Share (0..1) of bulk items answered 429 `es_rejected_execution_exception` (not applied). */
  probability: number;
  seed?: number;
}

export class EsCluster {
  readonly indices = new Map<string, EsIndex>();
  readonly uuid = randomBytes(16).toString('base64url').slice(0, 22);
  /** Recent query results, keyed by query, sort and the targets' refresh generations. */
  readonly resultCache = new Map<string, Matching>();
  /** Partial bulk failures, off when undefined. */
  itemFaults: { probability: number; random: () => number } | undefined;

  constructor(
    /** Default `index.refresh_interval` in ms; -1 never. */
    readonly refreshMs: number,
    /** Reported in `GET /`. */
    readonly version: string,
    /** Aborted when the emulator closes: `?refresh=wait_for` stops waiting. */
    readonly closing: AbortSignal,
  ) {}

  failBulkItems(options: BulkItemFaultOptions | undefined): void {
    if (options && !(options.probability >= 0 && options.probability <= 1)) {
      throw new RangeError('probability must be within 0..1');
    }
    this.itemFaults = options
      ? { probability: options.probability, random: mulberry32(options.seed ?? 0x2545f491) }
      : undefined;
  }

  createIndex(name: string, body: { settings?: unknown; mappings?: unknown }): EsIndex {
    validateIndexName(name);
    const existing = this.indices.get(name);
    if (existing) throw esErrors.alreadyExists(name, existing.uuid);
    const index = new EsIndex(name, body, this.refreshMs);
    this.indices.set(name, index);
    return index;
  }

  /** The index a write goes to, created with dynamic mappings if missing (auto_create_index). */
  writeIndex(name: string): EsIndex {
    return this.indices.get(name) ?? this.createIndex(name, {});
  }

  /** `a,b`, `logs-*`, `_all`, `*`. A missing concrete name is a 404 unless ignored. */
  resolve(expr: string, opts: { ignoreUnavailable?: boolean } = {}): EsIndex[] {
    const out = new Map<string, EsIndex>();
    for (const part of expr.split(',')) {
      if (part === '_all' || part === '*') {
        for (const index of this.indices.values()) out.set(index.name, index);
      } else if (part.includes('*')) {
        const re = wildcardRegExp(part);
        for (const index of this.indices.values()) {
          if (re.test(index.name)) out.set(index.name, index);
        }
      } else {
        const index = this.indices.get(part);
        if (index) out.set(index.name, index);
        else if (!opts.ignoreUnavailable) throw esErrors.indexNotFound(part);
      }
    }
    return [...out.values()];
  }

  /** Applies `?refresh=` to the indices a write touched; true when it refreshed. */
  async honourRefresh(query: URLSearchParams, touched: Iterable<EsIndex>): Promise<boolean> {
    const refresh = query.get('refresh');
    if (refresh === null || refresh === 'false') return false;
    if (refresh === '' || refresh === 'true') {
      for (const index of touched) index.refresh();
      return true;
    }
    if (refresh === 'wait_for') {
      await Promise.all([...touched].map((index) => index.nextRefresh(this.closing)));
      return true;
    }
    throw esErrors.illegalArgument(`Unknown value for refresh: [${refresh}].`);
  }

  /** `GET /`. */
  info() {
    return {
      name: 'tasklog-emulator-node',
      cluster_name: 'tasklog-emulator',
      cluster_uuid: this.uuid,
      version: {
        number: this.version,
        build_flavor: 'default',
        build_type: 'docker',
        build_hash: '0000000000000000000000000000000000000000',
        build_date: '2025-01-01T00:00:00.000Z',
        build_snapshot: false,
        lucene_version: '10.2.2',
        minimum_wire_compatibility_version: '8.19.0',
        minimum_index_compatibility_version: '8.0.0',
      },
      tagline: 'You Know, for Search',
    };
  }

  close(): void {
    for (const index of this.indices.values()) index.close();
  }
}

/** `logs-*` as an anchored RegExp: `*` matches any run of characters. */
export function wildcardRegExp(pattern: string): RegExp {
  const parts = pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('.*')}$`);
}

export function shardsInfo() {
  return { total: 2, successful: 1, failed: 0 };
}

export function randomId(): string {
  return randomBytes(15).toString('base64url');
}

function validateIndexName(name: string): void {
  if (name !== name.toLowerCase()) throw esErrors.invalidIndexName(name, 'must be lowercase');
  if (INDEX_FORBIDDEN.test(name)) {
    throw esErrors.invalidIndexName(
      name,
      "must not contain the following characters ['\\', '/', '*', '?', '\"', '<', '>', '|', ' ', ',', '#', ':']",
    );
  }
  if (/^[-_+]/.test(name)) {
    throw esErrors.invalidIndexName(name, "must not start with '_', '-', or '+'");
  }
  if (name === '.' || name === '..') {
    throw esErrors.invalidIndexName(name, "must not be '.' or '..'");
  }
  if (Buffer.byteLength(name) > 255) {
    throw esErrors.invalidIndexName(name, 'index name is too long');
  }
}
