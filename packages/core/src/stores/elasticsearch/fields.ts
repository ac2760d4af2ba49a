import type { estypes } from '@elastic/elasticsearch';
import { STRUCTURED_FIELDS } from './documents.js';

/** The fields naming an attempt, in the order `list` groups them. */
export const ID_FIELDS = ['dag_id', 'run_id', 'task_id', 'map_index', 'try_number'] as const;
export type IdField = (typeof ID_FIELDS)[number];

/** One field of `GET INDEX/_mapping`. */
export interface MappingEntry {
  type?: string;
  fields?: Record<string, { type?: string; ignore_above?: number }>;
}

export const NUMERIC = new Set([
  'long',
  'integer',
  'short',
  'byte',
  'double',
  'float',
  'half_float',
  'scaled_float',
  'unsigned_long',
]);

/**
 * How to query the index's fields. tasklog's own mapping makes the id fields keywords; an index
 * Airflow (or Filebeat) created by dynamic mapping has them as `text` with a `.keyword`
 * sub-field that is empty for values over its `ignore_above` (256 characters).
 */
export class Fields {
  readonly mapped: Set<string>;
  readonly #types = new Map<string, string | undefined>();
  /** Exact (keyword or numeric) path of each id field, if there is one. */
  readonly exact: Partial<Record<IdField, string>> = {};
  /** Every field tasklog writes is mapped. */
  readonly complete: boolean;
  readonly #logId: { path: string; maxLength: number } | undefined;

  constructor(props: Record<string, MappingEntry>, wanted: string[]) {
    this.mapped = new Set(Object.keys(props));
    for (const [name, entry] of Object.entries(props))
      this.#types.set(name, entry.type ?? 'object');
    this.complete = wanted.every((f) => this.mapped.has(f));
    const exactPath = (name: string): { path: string; maxLength: number } | undefined => {
      const entry = props[name];
      if (!entry) return { path: name, maxLength: Number.POSITIVE_INFINITY };
      if (entry.type === 'keyword' || NUMERIC.has(entry.type ?? '')) {
        return { path: name, maxLength: Number.POSITIVE_INFINITY };
      }
      const sub = Object.entries(entry.fields ?? {}).find(([, f]) => f.type === 'keyword');
      if (!sub) return undefined;
      return {
        path: `${name}.${sub[0]}`,
        maxLength: sub[1].ignore_above ?? Number.POSITIVE_INFINITY,
      };
    };
    for (const f of ID_FIELDS) {
      const p = exactPath(f);
      if (p) this.exact[f] = p.path;
    }
    this.#logId = exactPath('log_id');
  }

  /** The mapped type of a top-level field (`object` for objects), undefined when unmapped. */
  typeOf(name: string): string | undefined {
    return this.#types.get(name);
  }

  /** The keyword path of `log_id` (tasklog's field or dynamic mapping's `.keyword`), if any. */
  get logIdPath(): string | undefined {
    return this.#logId && this.mapped.has('log_id') ? this.#logId.path : undefined;
  }

  /** A log_id can be matched exactly (term) rather than as a phrase. */
  exactLogId(logId: string): boolean {
    return this.#logId !== undefined && logId.length <= this.#logId.maxLength;
  }

  logIdQuery(logId: string): estypes.QueryDslQueryContainer {
    if (this.exactLogId(logId)) return { term: { [this.#logId!.path]: logId } };
    // What Airflow itself queries; hits are checked for the exact id afterwards.
    return { match_phrase: { log_id: logId } };
  }

  /** Structured fields of Airflow 3's lines the index can take (event mode only). */
  structuredFields(messageField: 'message' | 'event'): Set<string> {
    if (messageField !== 'event') return new Set();
    const fits = (name: string, type: string | undefined) =>
      type === undefined ||
      type === 'keyword' ||
      type === 'text' ||
      (name === 'timestamp' && type === 'date');
    return new Set(STRUCTURED_FIELDS.filter((f) => fits(f, this.typeOf(f))));
  }
}
