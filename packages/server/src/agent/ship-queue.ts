import { backoffDelay } from '@tasklog/core';

export interface ShipJob {
  /** Identifies the job; a job already queued, waiting or running is not added twice. */
  readonly id: string;
  /** Jobs run oldest first (the log's mtime). */
  readonly mtimeMs: number;
}

export interface ShipQueueOptions<J extends ShipJob> {
  /** Jobs run at once. */
  concurrency: number;
  /** Runs one job; a rejection schedules it again after a backoff. */
  run: (job: J, signal: AbortSignal) => Promise<void>;
  /** Longest wait before a failed job runs again (ms). */
  retryMaxIntervalMs: number;
  onFailure?: (job: J, err: unknown, failures: number, delayMs: number) => void;
}

/**
 * The agent's backlog of finished logs to ship: oldest first, at most `concurrency` at once, so a
 * backlog of thousands costs a sorted array of small records, not thousands of open files. A job
 * that fails is never dropped: it waits (exponential backoff with full jitter, capped) and runs
 * again. `retryNow()` lets waiting jobs run at once, e.g. when the store answers again.
 */
export class ShipQueue<J extends ShipJob> {
  readonly #options: ShipQueueOptions<J>;
  /** Ready jobs, sorted by mtime, oldest last (popped from the end). */
  readonly #ready: J[] = [];
  /** Ids of the jobs in #ready. */
  readonly #queued = new Set<string>();
  readonly #waiting = new Map<string, { job: J; timer: NodeJS.Timeout }>();
  readonly #running = new Map<string, Promise<void>>();
  readonly #failures = new Map<string, number>();
  readonly #stopping = new AbortController();

  constructor(options: ShipQueueOptions<J>) {
    this.#options = options;
  }

  /** Jobs not yet done: ready, waiting for a retry, or running. */
  get size(): number {
    return this.#ready.length + this.#waiting.size + this.#running.size;
  }

  get running(): number {
    return this.#running.size;
  }

  /** Jobs that failed at least once and have not succeeded since, with their failure counts. */
  get failing(): ReadonlyMap<string, number> {
    return this.#failures;
  }

  has(id: string): boolean {
    return this.#running.has(id) || this.#waiting.has(id) || this.#queued.has(id);
  }

  add(job: J): void {
    if (this.#stopping.signal.aborted || this.has(job.id)) return;
    this.#insert(job);
    this.#pump();
  }

  /** Resolves when no job is ready, waiting or running. */
  async idle(): Promise<void> {
    while (this.size > 0 && !this.#stopping.signal.aborted) {
      await Promise.race([...this.#running.values(), new Promise((r) => setTimeout(r, 100))]);
    }
  }

  /** Moves every job waiting for a retry to the ready list. */
  retryNow(): void {
    for (const [id, { job, timer }] of this.#waiting) {
      clearTimeout(timer);
      this.#waiting.delete(id);
      this.#insert(job);
    }
    this.#pump();
  }

  /** Stops starting jobs, aborts running ones and waits for them. */
  async close(): Promise<void> {
    this.#stopping.abort();
    for (const { timer } of this.#waiting.values()) clearTimeout(timer);
    this.#waiting.clear();
    this.#ready.length = 0;
    this.#queued.clear();
    await Promise.allSettled([...this.#running.values()]);
  }

  #insert(job: J): void {
    // Binary search for the place that keeps #ready sorted newest first.
    let lo = 0;
    let hi = this.#ready.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#ready[mid]!.mtimeMs > job.mtimeMs) lo = mid + 1;
      else hi = mid;
    }
    this.#ready.splice(lo, 0, job);
    this.#queued.add(job.id);
  }

  #pump(): void {
    const { signal } = this.#stopping;
    while (!signal.aborted && this.#running.size < this.#options.concurrency) {
      const job = this.#ready.pop();
      if (!job) return;
      this.#queued.delete(job.id);
      const run = this.#options
        .run(job, signal)
        .then(
          () => {
            this.#failures.delete(job.id);
          },
          (err: unknown) => {
            if (signal.aborted) return;
            const failures = (this.#failures.get(job.id) ?? 0) + 1;
            this.#failures.set(job.id, failures);
            const delay = backoffDelay(Math.min(failures, 30), {
              baseDelayMs: 500,
              maxDelayMs: this.#options.retryMaxIntervalMs,
            });
            this.#options.onFailure?.(job, err, failures, delay);
            const timer = setTimeout(() => {
              this.#waiting.delete(job.id);
              this.add(job);
            }, delay);
            timer.unref();
            this.#waiting.set(job.id, { job, timer });
          },
        )
        .finally(() => {
          this.#running.delete(job.id);
          this.#pump();
        });
      this.#running.set(job.id, run);
    }
  }
}
