import { type AirflowRunRef, airflowIsoformat } from '../../airflow/airflow-db.js';
import type { AttemptKey } from '../../attempt-key.js';
import { InvalidInputError } from '../../errors.js';
import type { AirflowDateLabels } from './entries.js';

/**
 * Where the logical dates of runs whose id holds none come from: Airflow's metadata database
 * (`AirflowDb` of `openAirflowDb(agent.airflow_db_url)` has this shape).
 */
export interface LogicalDateSource {
  logicalDates(
    runs: readonly AirflowRunRef[],
    options?: { signal?: AbortSignal },
  ): Promise<(string | null | undefined)[]>;
  close(): Promise<void>;
}

/** An attempt's logical-date labels, and why a label is missing when one is. */
export interface ResolvedDates {
  labels: AirflowDateLabels;
  missing?: string;
}

/**
 * What a run id says about the run's logical date, in Airflow's label format.
 *
 * - `scheduled__<iso>`: Airflow 2 and 3 both name a scheduled run by its logical date
 *   (2.x `DagRun.generate_run_id(run_type, execution_date)`; 3.x's scheduler passes
 *   `run_after=dag_model.next_dagrun`, the logical date), so both labels.
 * - `backfill__<iso>`: Airflow 2 names a backfill run by its logical date, Airflow 3 by its
 *   `run_after` (`DagRun.generate_run_id(logical_date=…, run_after=info.run_after)`, the end of
 *   the data interval for interval timetables): only Airflow 2's `execution_date`.
 * - Anything else (manual runs: 3.x names them by `run_after`; custom ids; asset-triggered runs
 *   that have no logical date in 3.x): nothing.
 */
export function runIdDates(runId: string): { both?: string; executionDate?: string } {
  const m = /^(scheduled|backfill)__(.+)$/.exec(runId);
  const date = m ? airflowIsoformat(m[2]!) : undefined;
  if (!m || date === undefined) return {};
  return m[1] === 'scheduled' ? { both: date } : { executionDate: date };
}

/** Runs whose logical date is remembered; a run's logical date never changes. */
const CACHE_SIZE = 10_000;
/** After the database failed to open, it is tried again no sooner than this. */
const REOPEN_AFTER_MS = 30_000;

/**
 * Resolves attempts' logical dates: from the run id where it holds one, else from Airflow's
 * metadata database (one query for every lookup made in the same turn of the event loop), else
 * none. Warns once per attempt whose entries go out without a label Airflow's reader needs.
 */
export class LogicalDates {
  readonly #open: (() => Promise<LogicalDateSource>) | undefined;
  readonly #warn: (message: string) => void;
  #source: Promise<LogicalDateSource> | undefined;
  #failedAt = 0;
  readonly #cache = new Map<string, string | null>();
  #queue: {
    run: AirflowRunRef;
    resolve: (date: string | null | undefined) => void;
    reject: (err: unknown) => void;
  }[] = [];
  readonly #warned = new Set<string>();

  constructor(options: {
    source?: LogicalDateSource | (() => Promise<LogicalDateSource>);
    warn: (message: string) => void;
  }) {
    const source = options.source;
    this.#open =
      source === undefined ? undefined : typeof source === 'function' ? source : async () => source;
    this.#warn = options.warn;
  }

  /** Never throws: a database that fails is a reason for a missing label. */
  async resolve(key: Pick<AttemptKey, 'dagId' | 'runId'>): Promise<ResolvedDates> {
    const parsed = runIdDates(key.runId);
    if (parsed.both) return { labels: { logical_date: parsed.both, execution_date: parsed.both } };
    let reason: string;
    if (this.#open) {
      try {
        const date = await this.#lookup(key);
        if (typeof date === 'string')
          return { labels: { logical_date: date, execution_date: date } };
        reason =
          date === null
            ? "Airflow's dag_run row has no logical date (an Airflow 3 run started without one, which Airflow's own Stackdriver handler cannot label either)"
            : "Airflow's metadata database has no such dag run";
      } catch (err) {
        reason = `Airflow's metadata database could not be read: ${(err as Error).message}`;
      }
    } else {
      reason = 'the run id holds no logical date and agent.airflow_db_url is not set';
    }
    if (parsed.executionDate) {
      return {
        labels: { execution_date: parsed.executionDate },
        missing: `logical_date (read by Airflow 3) is unknown: ${reason}; a backfill run id names the logical date in Airflow 2 only`,
      };
    }
    return { labels: {}, missing: `logical_date and execution_date are unknown: ${reason}` };
  }

  /** Warns once for an attempt (by `id`) that lacks a label. */
  warnOnce(id: string, where: string, missing: string): void {
    if (this.#warned.has(id)) return;
    if (this.#warned.size >= CACHE_SIZE) this.#warned.clear();
    this.#warned.add(id);
    this.#warn(
      `Cloud Logging entries of ${where} go out without Airflow's logical-date label (${missing}); Airflow's StackdriverTaskHandler filters on it and will not show them`,
    );
  }

  async close(): Promise<void> {
    const source = this.#source;
    this.#source = undefined;
    const opened = await source?.catch(() => undefined);
    await opened?.close().catch(() => undefined);
  }

  #lookup(run: AirflowRunRef): Promise<string | null | undefined> {
    const id = JSON.stringify([run.dagId, run.runId]);
    const cached = this.#cache.get(id);
    if (cached !== undefined) return Promise.resolve(cached);
    return new Promise<string | null | undefined>((resolve, reject) => {
      this.#queue.push({ run, resolve, reject });
      if (this.#queue.length === 1) setImmediate(() => void this.#drain());
    }).then((date) => {
      if (date !== undefined) {
        if (this.#cache.size >= CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value!);
        this.#cache.set(id, date);
      }
      return date;
    });
  }

  async #drain(): Promise<void> {
    const batch = this.#queue;
    this.#queue = [];
    try {
      const source = await this.#sourceNow();
      const dates = await source.logicalDates(batch.map((b) => b.run));
      for (const [i, b] of batch.entries()) b.resolve(dates[i]);
    } catch (err) {
      for (const b of batch) b.reject(err);
    }
  }

  /**
   * The opened database. A failure to open is kept for REOPEN_AFTER_MS (an unreachable server is
   * not asked for every attempt), and for good when the URL or database is not Airflow's.
   */
  #sourceNow(): Promise<LogicalDateSource> {
    const open = this.#open!;
    if (this.#source && this.#failedAt > 0 && Date.now() - this.#failedAt > REOPEN_AFTER_MS) {
      this.#source = undefined;
    }
    this.#source ??= open().then(
      (source) => {
        this.#failedAt = 0;
        return source;
      },
      (err: unknown) => {
        this.#failedAt = err instanceof InvalidInputError ? Number.POSITIVE_INFINITY : Date.now();
        throw err;
      },
    );
    return this.#source;
  }
}
