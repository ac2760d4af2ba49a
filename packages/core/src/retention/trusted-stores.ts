import { BackendUnavailableError, InvalidInputError, isTasklogError } from '../errors.js';
import type { LogStore } from '../store.js';

/**
 * The stores retention may delete from: the configured one and those an operator listed in
 * `store.read_urls`, matched by the exact URL as the proxy matches them. A catalog row's
 * `storeUrl` is written by workers, so it only selects among these and never opens a store by
 * itself: otherwise a worker could make a pruner delete in any folder or bucket it can reach.
 * Other stores are opened on first use and kept until `close()`.
 */
export class TrustedStores {
  readonly #configured: LogStore;
  readonly #configuredUrls: ReadonlySet<string>;
  readonly #readUrls: ReadonlySet<string>;
  readonly #open: (url: string) => Promise<LogStore>;
  readonly #opened = new Map<string, Promise<LogStore>>();

  constructor(options: {
    /** The store of `store.url`, which the caller owns. */
    configured: LogStore;
    /** `store.url` as configured, when it differs from the opened store's `url`. */
    configuredUrl?: string;
    /** `store.read_urls`. */
    readUrls: readonly string[];
    /** Opens a store by URL (`openStore` with the configuration's options). */
    open: (url: string) => Promise<LogStore>;
  }) {
    this.#configured = options.configured;
    this.#configuredUrls = new Set(
      [options.configured.url, options.configuredUrl].filter((u): u is string => !!u),
    );
    this.#readUrls = new Set(options.readUrls.filter((u) => !this.#configuredUrls.has(u)));
    this.#open = options.open;
  }

  /** The URL a row's `storeUrl` stands for: a missing one means the configured store. */
  urlOf(storeUrl: string | null): string {
    return !storeUrl || this.#configuredUrls.has(storeUrl) ? this.#configured.url : storeUrl;
  }

  /** Whether a row naming `storeUrl` may be pruned from here. */
  trusts(storeUrl: string | null): boolean {
    return !storeUrl || this.#configuredUrls.has(storeUrl) || this.#readUrls.has(storeUrl);
  }

  /**
   * The store a row's `storeUrl` names. Throws InvalidInputError for a store that is not
   * trusted, BackendUnavailableError when it cannot be opened (tried again on the next call).
   */
  async get(storeUrl: string | null): Promise<LogStore> {
    if (!storeUrl || this.#configuredUrls.has(storeUrl)) return this.#configured;
    if (!this.#readUrls.has(storeUrl)) {
      throw new InvalidInputError(
        `store ${storeUrl} is neither store.url nor listed in store.read_urls`,
      );
    }
    let store = this.#opened.get(storeUrl);
    if (!store) {
      store = this.#open(storeUrl).catch((err: unknown) => {
        this.#opened.delete(storeUrl);
        throw isTasklogError(err)
          ? err
          : new BackendUnavailableError(`cannot open store ${storeUrl}`, { cause: err });
      });
      this.#opened.set(storeUrl, store);
    }
    return store;
  }

  /** Closes the stores opened here (never the configured one). */
  async close(): Promise<void> {
    const stores = [...this.#opened.values()];
    this.#opened.clear();
    await Promise.allSettled(stores.map(async (p) => (await p).close()));
  }
}
