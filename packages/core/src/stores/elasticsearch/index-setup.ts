import type { estypes } from '@elastic/elasticsearch';
import { BackendUnavailableError, InvalidInputError } from '../../errors.js';
import type { Context } from './client.js';
import { errorType, isIndexMissing } from './errors.js';
import { Fields, type MappingEntry, NUMERIC } from './fields.js';
import type { ResolvedElasticsearchOptions } from './options.js';

type IndexOptions = Pick<ResolvedElasticsearchOptions, 'index' | 'messageField' | 'hostField'>;

/**
 * The index's field layout, read once and kept while the index exists; a writer creates the
 * index with tasklog's mapping, or adds the fields tasklog writes that it does not map yet.
 */
export class IndexSetup {
  #fields: Fields | undefined;

  constructor(private readonly o: IndexOptions) {}

  /** The index's field layout; creates the index (tasklog's mapping) or adds missing fields. */
  async ensure(ctx: Context, signal: AbortSignal | undefined): Promise<Fields> {
    const { index } = this.o;
    const known = await this.existing(ctx, signal);
    if (known?.complete) return known;
    const properties = mappingProperties(this.o);
    if (!known) {
      try {
        await ctx.call(
          () => ctx.client.indices.create({ index, mappings: { properties } }, { signal }),
          signal,
        );
      } catch (err) {
        // Another writer (or a retried request that did arrive) created it first.
        if (errorType(err) !== 'resource_already_exists_exception') throw err;
      }
    } else {
      const missing = Object.fromEntries(
        Object.entries(properties).filter(([f]) => !known.mapped.has(f)),
      );
      await ctx.call(
        () => ctx.client.indices.putMapping({ index, properties: missing }, { signal }),
        signal,
      );
    }
    this.#fields = undefined;
    const fields = await this.existing(ctx, signal);
    if (!fields) throw new BackendUnavailableError(`index ${index} vanished after creation`);
    return fields;
  }

  /** The index's field layout, or undefined when the index does not exist (not cached then). */
  async existing(ctx: Context, signal: AbortSignal | undefined): Promise<Fields | undefined> {
    if (this.#fields) return this.#fields;
    const fields = await this.#read(ctx, signal);
    if (fields) this.#fields = fields;
    return fields;
  }

  /** Drops the kept layout (the store was closed). */
  forget(): void {
    this.#fields = undefined;
  }

  async #read(ctx: Context, signal: AbortSignal | undefined): Promise<Fields | undefined> {
    const { index } = this.o;
    let res: Record<string, { mappings?: { properties?: Record<string, MappingEntry> } }>;
    try {
      res = (await ctx.call(
        () => ctx.client.indices.getMapping({ index }, { signal }),
        signal,
      )) as typeof res;
    } catch (err) {
      if (isIndexMissing(err)) return undefined;
      throw err;
    }
    // An alias may point at several indices; their mappings are merged (first one wins).
    const props: Record<string, MappingEntry> = {};
    for (const mapping of Object.values(res)) {
      for (const [name, entry] of Object.entries(mapping.mappings?.properties ?? {})) {
        props[name] ??= entry;
      }
    }
    const offset = props.offset?.type;
    if (offset !== undefined && !NUMERIC.has(offset)) {
      throw new InvalidInputError(
        `index ${index} maps "offset" as ${offset}; tasklog (and Airflow) need a numeric field`,
      );
    }
    return new Fields(props, Object.keys(mappingProperties(this.o)));
  }
}

/** tasklog's mapping of the fields it writes. */
function mappingProperties(o: IndexOptions): Record<string, estypes.MappingProperty> {
  return {
    log_id: { type: 'keyword' },
    offset: { type: 'long' },
    length: { type: 'long' },
    [o.messageField]: { type: 'text' },
    encoding: { type: 'keyword' },
    [o.hostField]: { type: 'keyword' },
    '@timestamp': { type: 'date' },
    dag_id: { type: 'keyword' },
    task_id: { type: 'keyword' },
    run_id: { type: 'keyword' },
    map_index: { type: 'long' },
    try_number: { type: 'long' },
    start: { type: 'boolean' },
    end: { type: 'boolean' },
    sha256: { type: 'keyword' },
    // Only what makes the log exact again; never searched, so never indexed.
    crlf: { type: 'boolean', index: false },
    head_skip: { type: 'integer', index: false },
    tail_base64: { type: 'binary' },
    raw_text: { type: 'text', index: false },
    raw_base64: { type: 'binary' },
    // Airflow 3 shows these of each document (TASK_LOG_FIELDS), taken from its JSON lines.
    ...(o.messageField === 'event'
      ? {
          timestamp: { type: 'date' },
          level: { type: 'keyword' },
          logger: { type: 'keyword' },
          chan: { type: 'keyword' },
        }
      : {}),
  };
}
