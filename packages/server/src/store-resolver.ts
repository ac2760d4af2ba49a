import type { LogStore } from '@tasklog/core';
import { BackendUnavailableError, isTasklogError } from '@tasklog/core';

/**
 * Finds the store that holds an attempt. The catalog names each attempt's archive; after a
 * migration that may be an older store than the configured one, so such stores are opened on
 * first use and kept for the app's life — but only stores the operator listed
 * (`store.read_urls`): a catalog row is written by workers and must not make the proxy open any
 * folder or bucket with its own rights.
 */
export class StoreResolver {
  private readonly opened = new Map<string, Promise<LogStore>>();

  constructor(
    private readonly configured: LogStore,
    private readonly open?: (url: string) => Promise<LogStore>,
    private readonly readable: readonly string[] = [],
  ) {}

  /**
   * The store named `url`, or the configured store when `url` is empty or the configured one's.
   * Throws BackendUnavailableError when it is not one this server reads, or cannot be opened.
   */
  async forUrl(url: string | null | undefined): Promise<LogStore> {
    if (!url || url === this.configured.url) return this.configured;
    if (!this.open || !this.readable.includes(url)) {
      throw new BackendUnavailableError(
        'the catalog names an archive this server does not read; an operator may list it in ' +
          'store.read_urls (archives being migrated)',
      );
    }
    let store = this.opened.get(url);
    if (!store) {
      store = this.open(url).catch((err: unknown) => {
        // Forget the failure so the next request tries again.
        this.opened.delete(url);
        throw isTasklogError(err)
          ? err
          : new BackendUnavailableError(`cannot open store ${url}`, { cause: err });
      });
      this.opened.set(url, store);
    }
    return store;
  }

  /** Closes the stores this resolver opened (never the configured one, which the caller owns). */
  async close(): Promise<void> {
    const stores = [...this.opened.values()];
    this.opened.clear();
    const closing = stores.map(async (p) => (await p).close());
    await Promise.allSettled(closing);
  }
}
