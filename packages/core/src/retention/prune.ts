import type { AttemptKey } from '../attempt-key.js';
import type { AttemptRecord, Catalog, FinishedCursor, FinishedState } from '../catalog/catalog.js';
import { finishedStates } from '../catalog/catalog-finished.js';
import { InvalidInputError } from '../errors.js';
import { maskUrlPasswords } from '../redact.js';
import type { TrustedStores } from './trusted-stores.js';

/** Why a candidate stayed. */
export type PruneSkipReason =
  /** Its `storeUrl` is neither `store.url` nor in `store.read_urls`: its log is not ours to delete. */
  | 'untrusted-store'
  /** Between listing and deleting it was resumed, changed or moved (re-checked before each delete). */
  | 'changed'
  /** Someone else (another pruner) deleted it first. */
  | 'gone';

/** Options of `pruneAttempts`. */
export interface PruneOptions {
  catalog: Catalog;
  stores: TrustedStores;
  /** Attempts whose record last changed before this instant go. */
  olderThan: Date;
  /** Only DAGs matching one of these patterns (`*`, `?`); default every DAG. */
  dags?: readonly string[];
  /** Only these finished states; default every one (FINISHED_STATES). */
  states?: readonly FinishedState[];
  /** List what would go, delete nothing. */
  dryRun?: boolean;
  /** Consider at most this many candidates this run (the rest wait for the next run). */
  limit?: number;
  /** Attempts deleted at once (default 8): store deletes are network round trips. */
  concurrency?: number;
  /** Candidates listed per catalog query (default 500). */
  pageSize?: number;
  /** Stops starting new deletes; the summary then says `complete: false`. */
  signal?: AbortSignal;
  /** Called for each attempt deleted (in a dry run: each that would be). */
  onDeleted?: (record: AttemptRecord) => void;
  /** Called with each failed attempt's error (the CLI's exit code comes from the first). */
  onError?: (err: unknown, record: AttemptRecord) => void;
}

/** An attempt that was skipped or failed, as the summary lists it. */
export interface PruneNote extends AttemptKey {
  readonly storeUrl: string | null;
  /** A PruneSkipReason, or the error of a failure. */
  readonly reason: string;
}

/** What one store lost (or would lose, in a dry run). */
export interface PruneStoreSummary {
  readonly url: string;
  attempts: number;
  bytes: number;
  skipped: number;
  failed: number;
}

/** What a prune did. In a dry run `deleted` counts what would go. */
export interface PruneSummary {
  readonly dryRun: boolean;
  /** The cutoff, ISO-8601: records last changed before it were candidates. */
  readonly olderThan: string;
  readonly deleted: { attempts: number; bytes: number };
  readonly skipped: {
    attempts: number;
    reasons: Partial<Record<PruneSkipReason, number>>;
    /** The first NOTES_KEPT skipped attempts. */
    list: PruneNote[];
  };
  /** Attempts whose delete failed (their record stays, so the next run tries again). */
  readonly failed: { attempts: number; list: PruneNote[] };
  readonly stores: PruneStoreSummary[];
  /** False when the run stopped at `limit` or on `signal`: candidates may remain. */
  complete: boolean;
}

/** Skipped and failed attempts listed by name, at most; the counts stay exact. */
const NOTES_KEPT = 100;

/**
 * Deletes finished attempts last changed before `olderThan` from their store and the catalog.
 * Each attempt, in this order: its record is read again (still finished, still old, same store:
 * a resumed attempt stays), its log is deleted from its store, then its record is deleted on the
 * same conditions. A run killed anywhere leaves at worst a record whose log is already gone; the
 * next run lists it again, the store's delete of a missing log succeeds, and the record goes.
 * Deletes are idempotent, so several pruners (several proxies) may run at once.
 *
 * Throws what listing the catalog throws (BackendUnavailableError, InvalidInputError); a failed
 * delete of one attempt is counted in `failed` and the run goes on.
 */
export async function pruneAttempts(options: PruneOptions): Promise<PruneSummary> {
  const { catalog, stores, olderThan, signal } = options;
  const states = finishedStates(options.states);
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const pageSize = options.pageSize ?? 500;
  const concurrency = options.concurrency ?? 8;
  for (const [name, v] of [
    ['limit', limit],
    ['pageSize', pageSize],
    ['concurrency', concurrency],
  ] as const) {
    if (!(v === Number.POSITIVE_INFINITY || (Number.isSafeInteger(v) && v >= 1))) {
      throw new InvalidInputError(`${name} must be a positive integer, got ${String(v)}`);
    }
  }
  const summary: PruneSummary = {
    dryRun: options.dryRun === true,
    olderThan: olderThan.toISOString(),
    deleted: { attempts: 0, bytes: 0 },
    skipped: { attempts: 0, reasons: {}, list: [] },
    failed: { attempts: 0, list: [] },
    stores: [],
    complete: true,
  };
  const byStore = new Map<string, PruneStoreSummary>();
  const storeOf = (r: AttemptRecord) => {
    const url = stores.urlOf(r.storeUrl);
    let s = byStore.get(url);
    if (!s) {
      s = { url, attempts: 0, bytes: 0, skipped: 0, failed: 0 };
      byStore.set(url, s);
    }
    return s;
  };
  const note = (r: AttemptRecord, reason: string): PruneNote => ({
    ...r.key,
    storeUrl: r.storeUrl,
    reason,
  });
  const skip = (r: AttemptRecord, reason: PruneSkipReason) => {
    summary.skipped.attempts++;
    summary.skipped.reasons[reason] = (summary.skipped.reasons[reason] ?? 0) + 1;
    if (summary.skipped.list.length < NOTES_KEPT) summary.skipped.list.push(note(r, reason));
    storeOf(r).skipped++;
  };
  const gone = (r: AttemptRecord) => {
    options.onDeleted?.(r);
    summary.deleted.attempts++;
    summary.deleted.bytes += r.size ?? 0;
    const s = storeOf(r);
    s.attempts++;
    s.bytes += r.size ?? 0;
  };

  const prune = async (listed: AttemptRecord): Promise<void> => {
    if (!stores.trusts(listed.storeUrl)) return skip(listed, 'untrusted-store');
    if (summary.dryRun) return gone(listed);
    try {
      const store = await stores.get(listed.storeUrl);
      const current = await catalog.get(listed.key);
      if (current === undefined) return skip(listed, 'gone');
      if (
        !(states as string[]).includes(current.state) ||
        current.updatedAt >= olderThan ||
        current.storeUrl !== listed.storeUrl
      ) {
        return skip(listed, 'changed');
      }
      await store.delete(listed.key);
      const removed = await catalog.delete(listed.key, { states, olderThan });
      // Resumed between the check and the delete: its writer writes the log again.
      if (removed === undefined) return skip(listed, 'changed');
      gone(removed);
    } catch (err) {
      options.onError?.(err, listed);
      summary.failed.attempts++;
      const reason = maskUrlPasswords(err instanceof Error ? err.message : String(err));
      if (summary.failed.list.length < NOTES_KEPT) summary.failed.list.push(note(listed, reason));
      storeOf(listed).failed++;
    }
  };

  let after: FinishedCursor | undefined;
  let considered = 0;
  for (;;) {
    if (signal?.aborted) {
      summary.complete = false;
      break;
    }
    const page = await catalog.listFinished({
      olderThan,
      states,
      ...(options.dags !== undefined ? { dags: options.dags } : {}),
      limit: Math.min(pageSize, limit - considered),
      ...(after !== undefined ? { after } : {}),
    });
    considered += page.records.length;
    if (await forEachBounded(page.records, concurrency, prune, signal)) {
      summary.complete = false;
      break;
    }
    if (page.next === null) break;
    after = page.next;
    if (considered >= limit) {
      summary.complete = false;
      break;
    }
  }
  summary.stores.push(...byStore.values());
  return summary;
}

/**
 * Runs `fn` over `items`, `concurrency` at a time; stops starting new ones once `signal` aborts
 * (returns true then). Every started call is awaited: nothing is left running.
 */
async function forEachBounded<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  let next = 0;
  let stopped = false;
  const worker = async () => {
    while (next < items.length) {
      if (signal?.aborted) {
        stopped = true;
        return;
      }
      await fn(items[next++]!);
    }
  };
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, worker);
  await Promise.allSettled(workers);
  await Promise.all(workers);
  return stopped;
}
