import {
  type Catalog,
  type LogStore,
  openStore,
  type PruneSummary,
  pruneAttempts,
  storeOptionsFromConfig,
  TrustedStores,
} from '@tasklog/core';
import type { Logger } from 'pino';
import type { CommandContext } from './context.js';

/** A comma-separated config value as a list. */
const list = (value: string) =>
  value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);

/** The stores retention may delete from: `store.url` and `store.read_urls`, nothing else. */
export function trustedStores(ctx: CommandContext, configured: LogStore): TrustedStores {
  return new TrustedStores({
    configured,
    configuredUrl: ctx.config.store.url,
    readUrls: list(ctx.config.store.read_urls),
    open: (url) => openStore(url, storeOptionsFromConfig(ctx.config, ctx.pathTemplate)),
  });
}

/** The summary without its lists of attempts: one log line's worth. */
export function summaryCounts(summary: PruneSummary) {
  return {
    dryRun: summary.dryRun,
    olderThan: summary.olderThan,
    deleted: summary.deleted,
    skipped: { attempts: summary.skipped.attempts, reasons: summary.skipped.reasons },
    failed: summary.failed.attempts,
    stores: summary.stores,
    complete: summary.complete,
  };
}

export interface RetentionSchedule {
  /** Stops the schedule and waits for a run in progress to stop (between two deletes). */
  stop(): Promise<void>;
}

/**
 * `retention.keep_days` in `tasklog serve`: prunes once at start, then `intervalMs` after each
 * run ends, logging each run's summary. Several proxies may each run it: every delete re-checks
 * the record and store deletes are idempotent, so two pruners at once only duplicate work.
 */
export function startRetentionSchedule(options: {
  ctx: CommandContext;
  store: LogStore;
  catalog: Catalog;
  keepDays: number;
  intervalMs: number;
  logger: Logger;
}): RetentionSchedule {
  const { ctx, store, catalog, keepDays, intervalMs, logger } = options;
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const runOnce = async () => {
    const stores = trustedStores(ctx, store);
    try {
      const summary = await pruneAttempts({
        catalog,
        stores,
        olderThan: new Date(Date.now() - keepDays * 86_400_000),
        signal: abort.signal,
      });
      const level = summary.failed.attempts > 0 ? 'warn' : 'info';
      logger[level](
        { retention: summaryCounts(summary) },
        `retention: deleted ${summary.deleted.attempts} attempt(s), ${summary.deleted.bytes} bytes; skipped ${summary.skipped.attempts}, failed ${summary.failed.attempts}`,
      );
    } catch (err) {
      logger.error({ err }, 'retention: the run failed; trying again at the next interval');
    } finally {
      await stores.close();
    }
  };
  const schedule = (delayMs: number) => {
    timer = setTimeout(() => {
      running = runOnce().finally(() => {
        running = undefined;
        if (!abort.signal.aborted) schedule(intervalMs);
      });
    }, delayMs);
    // Retention alone never keeps the proxy running.
    timer.unref();
  };
  logger.info({ keepDays, intervalSeconds: intervalMs / 1000 }, 'retention: scheduled');
  schedule(0);
  return {
    async stop() {
      abort.abort();
      clearTimeout(timer);
      await running;
    },
  };
}
