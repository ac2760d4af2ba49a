import { readFile } from 'node:fs/promises';
import type { Client } from '@elastic/elasticsearch';
import { importOptional } from '../../optional-import.js';
import { withRetry } from '../../retry.js';
import { isTransient } from './errors.js';
import type { ResolvedElasticsearchOptions } from './options.js';

/** The store's lazily built client, shared with its writers, and how every request is sent. */
export interface Context {
  client: Client;
  /** Runs a request with retries on throttling, 5xx, timeouts and connection errors. */
  call<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

type ClientOptions = Pick<
  ResolvedElasticsearchOptions,
  | 'node'
  | 'apiKey'
  | 'username'
  | 'password'
  | 'caFile'
  | 'requestTimeoutMs'
  | 'distribution'
  | 'retry'
>;

/**
 * The client, built on first use: the SDK is loaded then (`tasklog fetch` from a folder never
 * loads it), and a build that failed (a missing package, an unreadable CA file) is tried again
 * by the next call.
 */
export class LazyContext {
  #context: Promise<Context> | undefined;

  constructor(private readonly options: ClientOptions) {}

  get(): Promise<Context> {
    this.#context ??= createContext(this.options).catch((err: unknown) => {
      this.#context = undefined;
      throw err;
    });
    return this.#context;
  }

  async close(): Promise<void> {
    const pending = this.#context;
    this.#context = undefined;
    if (pending) await (await pending.catch(() => undefined))?.client.close();
  }
}

async function createContext(o: ClientOptions): Promise<Context> {
  const sdk = await importOptional(
    '@elastic/elasticsearch',
    'the elasticsearch store',
    () => import('@elastic/elasticsearch'),
  );
  const ca = o.caFile ? await readFile(o.caFile) : undefined;
  /**
   * Offsets Airflow's stdout formatter writes are nanosecond timestamps (~1.7e18), beyond
   * JSON.parse's exact integers; `search_after` must get them back exactly, so sort values of
   * 16+ digits are kept as strings (Elasticsearch accepts strings for long sort fields).
   */
  class ExactSortSerializer extends sdk.Serializer {
    override deserialize<T = unknown>(json: string): T {
      return super.deserialize<T>(json.replace(/"sort":\[(-?\d{16,})(?=[,\]])/g, '"sort":["$1"'));
    }
  }
  /**
   * OpenSearch speaks the same REST API but sends no `X-Elastic-Product` header and rejects
   * the `compatible-with=9` media types, both of which the v9 client insists on; this
   * transport drops both.
   */
  class PlainTransport extends sdk.Transport {
    constructor(opts: ConstructorParameters<typeof sdk.Transport>[0]) {
      super({ ...opts, productCheck: null, vendoredHeaders: undefined } as never);
    }
  }
  const client: Client = new sdk.Client({
    node: o.node,
    ...(o.apiKey
      ? { auth: { apiKey: o.apiKey } }
      : o.username !== undefined
        ? { auth: { username: o.username, password: o.password ?? '' } }
        : {}),
    ...(ca ? { tls: { ca } } : {}),
    requestTimeout: o.requestTimeoutMs,
    // Retries happen in `call` (backoff with full jitter, 429 included), not in the client.
    maxRetries: 0,
    Serializer: ExactSortSerializer,
    ...(o.distribution === 'opensearch' ? { Transport: PlainTransport as never } : {}),
  });
  const retry = o.retry;
  return {
    client,
    call: (fn, signal) => withRetry(fn, { ...retry, retryable: isTransient, signal }),
  };
}
