import {
  type Catalog,
  type LoadedConfig,
  type LogStore,
  loadConfig,
  openCatalog,
  openStore,
  PathTemplate,
  Shipper,
  storeOptionsFromConfig,
} from '@tasklog/core';

/** How each config key is spelled as a flag, so errors name the flag the user typed. */
const FLAG_NAMES: Record<string, string> = {
  config: '--config',
  'store.url': '--store',
  'server.host': '--host',
  'server.port': '--port',
  'store.flush_interval': '--flush-interval',
  'agent.host': '--host',
  'agent.port': '--port',
  'agent.url': '--url',
};

/** Options every command accepts. */
export interface GlobalOptions {
  config?: string;
}

/**
 * What a command works with: the validated config plus lazily opened store and catalog, so a
 * command only pays for the backends it touches. `close()` releases whatever was opened.
 */
export class CommandContext {
  readonly loaded: LoadedConfig;
  readonly pathTemplate: PathTemplate;
  private store?: Promise<LogStore>;
  private catalog?: Promise<Catalog>;

  constructor(global: GlobalOptions, flags: Record<string, unknown> = {}) {
    this.loaded = loadConfig({ configPath: global.config, flags, flagNames: FLAG_NAMES });
    this.pathTemplate = new PathTemplate(this.loaded.config.core.path_template);
    // Logs, archives, journals and locks are created 0640 / 0750 by default, whatever the
    // caller's own umask: task output must not become world-readable.
    process.umask(Number.parseInt(this.loaded.config.core.umask, 8));
  }

  get config() {
    return this.loaded.config;
  }

  openStore(): Promise<LogStore> {
    this.store ??= openStore(
      this.config.store.url,
      storeOptionsFromConfig(this.config, this.pathTemplate),
    );
    return this.store;
  }

  /** The embedded SQLite catalog migrates itself; any other catalog needs `tasklog db migrate`. */
  openCatalog(): Promise<Catalog> {
    const url = this.config.catalog.url;
    this.catalog ??= openCatalog(url, { migrate: url.startsWith('sqlite:') ? 'auto' : 'never' });
    return this.catalog;
  }

  /** A shipper for the configured base folder, store and catalog. */
  async shipper(options: { deleteLocalCopy?: boolean } = {}): Promise<Shipper> {
    return new Shipper({
      store: await this.openStore(),
      catalog: await this.openCatalog(),
      pathTemplate: this.pathTemplate,
      baseLogFolder: this.config.core.base_log_folder,
      stateFolder: this.config.core.state_folder,
      deleteLocalCopy: options.deleteLocalCopy ?? this.config.core.delete_local_copy,
      retryMaxIntervalMs: this.config.store.retry_max_interval * 1000,
    });
  }

  async close(): Promise<void> {
    const pending = [this.store?.then((s) => s.close()), this.catalog?.then((c) => c.close())];
    await Promise.allSettled(pending);
  }
}

/** Runs `fn` with a context and always closes it. */
export async function withContext<T>(
  global: GlobalOptions,
  flags: Record<string, unknown>,
  fn: (ctx: CommandContext) => Promise<T>,
): Promise<T> {
  const ctx = new CommandContext(global, flags);
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}
