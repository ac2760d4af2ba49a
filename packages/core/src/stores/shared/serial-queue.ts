/**
 * Runs operations one at a time, in the order they were queued: each starts once the one before
 * it has settled, whether it succeeded or failed. A writer's appends, flushes and finish go
 * through one, so they never overlap.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  /** Queues `op`; resolves or rejects as it does. */
  run<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(op, op);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Resolves once everything queued so far has settled. */
  async idle(): Promise<void> {
    await this.#tail;
  }
}
