import { lstat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AttemptBusyError,
  type AttemptEnd,
  BackendUnavailableError,
  backoffDelay,
  hasCompletionMarker,
  type Shipper,
} from '@tasklog/core';
import type { AgentOptions, AgentStatus, FinishedJob, Tracked } from './agent-options.js';
import { type CompletionRule, idleRule, type Verdict } from './completion.js';
import { type FoundLog, LogDiscovery } from './log-discovery.js';
import { mapLimit } from './map-limit.js';
import { ShipQueue } from './ship-queue.js';

export type { AgentOptions, AgentStatus } from './agent-options.js';

/** Files looked at at once (markers, stat): bounded, so a backlog never costs a descriptor each. */
const FILE_CONCURRENCY = 32;

/**
 * The agent's watcher: every attempt log under the base folder ends up archived, whoever wrote it.
 *
 * - Discovery: one `fs.watch` per folder (folder-watcher.ts) picks a new attempt up at once; a
 *   full scan every `scanIntervalMs`, and at start, is the safety net for lost events.
 * - A log without a completion marker is running: it is followed (`Shipper.follow`: chunks every
 *   flush interval, catalog `running` with this agent's URL and a heartbeat) until its marker
 *   appears or the completion rule says it finished (Airflow's database, or idleness); then it
 *   becomes one final object at the attempt's key.
 * - A finished log (marker, or the rule) not archived with its current size goes to the ship
 *   queue: oldest first, `shipConcurrency` at once, retried with backoff until it ships. So quick
 *   tasks that finish between two scans, and tasks that finished while the agent was down, are
 *   shipped too.
 * - A log that grows after it was archived is followed or shipped again; the shipper replaces
 *   the archived copy (same bytes and more) or refuses different content.
 * - Another process shipping the attempt (`tasklog run`, holding the attempt's lock) is left to
 *   it; the agent still records its URL so the proxy can read the live log here.
 */
export class Agent {
  private readonly tracked = new Map<string, Tracked>();
  private readonly discovery: LogDiscovery;
  private readonly queue: ShipQueue<FinishedJob>;
  private readonly completion: CompletionRule;
  /** Aborted when the agent stops for good: follows, ships and rule queries end. */
  private readonly stopping = new AbortController();
  /** Aborted when `close()` begins: the scan loop ends (a drain may still scan once). */
  private readonly wakeScan = new AbortController();
  private generation = 0;
  private scanLoop?: Promise<void>;
  private closing?: Promise<void>;

  constructor(private readonly options: AgentOptions) {
    this.completion =
      options.completion ?? idleRule(options.idleTimeoutMs ?? 3_600_000, 'abandoned');
    this.discovery = new LogDiscovery({
      baseLogFolder: options.baseLogFolder,
      pathTemplate: options.pathTemplate,
      logger: options.logger,
      onFound: (logs) => this.takeUpAll(logs, this.generation),
      isBusy: (relativePath) => {
        const phase = this.tracked.get(relativePath)?.phase;
        return phase !== undefined && phase !== 'settled' && phase !== 'busy';
      },
    });
    this.queue = new ShipQueue<FinishedJob>({
      concurrency: options.shipConcurrency ?? 4,
      retryMaxIntervalMs: options.retryMaxIntervalMs ?? 10_000,
      run: (job, signal) => this.shipFinished(job, signal),
      onFailure: (job, err, failures, delayMs) => {
        options.metrics?.failed(err);
        options.metrics?.retried(err);
        const log = failures === 1 || failures % 10 === 0 ? 'warn' : 'debug';
        options.logger[log](
          { err, relativePath: job.id, failures, retryInMs: delayMs },
          'shipping a finished attempt failed; trying again',
        );
      },
    });
  }

  /** Relative paths of the attempts being followed now. */
  get following(): string[] {
    return [...this.tracked.values()]
      .filter((t) => t.phase === 'following')
      .map((t) => t.relativePath)
      .sort();
  }

  status(): AgentStatus {
    let failingSince = Infinity;
    for (const t of this.tracked.values()) {
      if (t.failingSince !== undefined) failingSince = Math.min(failingSince, t.failingSince);
    }
    return {
      following: this.following.length,
      backlog: this.queue.size,
      failing: [...this.queue.failing].map(([relativePath, failures]) => ({
        relativePath,
        failures,
      })),
      watchedFolders: this.discovery.watchedFolders,
      ...(failingSince === Infinity
        ? {}
        : { storeFailingSince: new Date(failingSince).toISOString() }),
    };
  }

  /** Starts watching and scanning; the first scan runs at once. */
  start(): void {
    this.scanLoop ??= this.loop();
  }

  /**
   * Stops the agent. First it drains, for up to `drainMs` (default 0): one last scan, so that
   * attempts that finished just now (a marker, or Airflow's database saying so — a pod being
   * shut down after its task ended) are shipped, and the queue of finished logs empties. Then
   * it stops watching, scanning, following and shipping, and waits until every follow has
   * flushed and returned. Attempts still running stay `running` and resume on the next start.
   */
  close(options: { drainMs?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      this.wakeScan.abort();
      await this.scanLoop;
      const drainMs = options.drainMs ?? 0;
      if (drainMs > 0) await this.drain(drainMs);
      this.discovery.close();
      this.stopping.abort();
      const follows = [...this.tracked.values()].flatMap((t) => (t.follow ? [t.follow] : []));
      for (const f of follows) f.controller.abort();
      await Promise.allSettled([this.queue.close(), ...follows.map((f) => f.done)]);
      await this.completion.close();
    })();
    return this.closing;
  }

  /** The last scan, then waits (up to `ms`) for finished attempts to be shipped. */
  private async drain(ms: number): Promise<void> {
    const deadline = AbortSignal.timeout(ms);
    try {
      await this.scan();
    } catch (err) {
      this.options.logger.warn({ err }, 'the last scan before stopping failed');
    }
    const finishing = [];
    for (const t of this.tracked.values()) {
      if (t.follow && (t.verdict || (await hasCompletionMarker(t.file)))) {
        finishing.push(t.follow.done);
      }
    }
    const drained = Promise.all([...finishing, this.queue.idle()]);
    const timedOut = new Promise<void>((resolve) =>
      deadline.addEventListener('abort', () => resolve(), { once: true }),
    );
    await Promise.race([drained, timedOut]);
    if (deadline.aborted) {
      this.options.logger.warn(
        { backlog: this.queue.size },
        'stopping before every finished attempt was shipped; the next start ships the rest',
      );
    }
  }

  /**
   * One pass over the base folder: watches every folder, takes up every attempt log it finds,
   * forgets logs that are gone, and asks the completion rule about the followed attempts.
   */
  async scan(): Promise<void> {
    const generation = ++this.generation;
    const found = await this.discovery.scan();
    if (this.stopping.signal.aborted) return;
    await this.takeUpAll(found, generation);
    for (const [relativePath, t] of this.tracked) {
      if (t.seen < generation && t.phase === 'settled') this.tracked.delete(relativePath);
    }
    await this.refreshVerdicts();
  }

  private async loop(): Promise<void> {
    const { signal } = this.wakeScan;
    const every = this.options.scanIntervalMs ?? 2000;
    while (!signal.aborted) {
      try {
        await this.scan();
      } catch (err) {
        this.options.logger.error({ err }, 'scanning the base log folder failed');
      }
      await sleep(every, undefined, { signal }).catch(() => undefined);
    }
  }

  /** Takes up every log found, then decides about the new and changed ones together. */
  private async takeUpAll(found: FoundLog[], generation: number): Promise<void> {
    const fresh: Tracked[] = [];
    for (const { file, relativePath } of found) {
      const t = await this.takeUp(file, relativePath, generation);
      if (t) fresh.push(t);
    }
    await this.decide(fresh);
  }

  /**
   * Registers a log found on disk. Returns it when it needs a decision (new, or changed since it
   * was archived); undefined when it is being followed or shipped, or archived as it is.
   */
  private async takeUp(
    file: string,
    relativePath: string,
    generation: number,
  ): Promise<Tracked | undefined> {
    const known = this.tracked.get(relativePath);
    if (known) known.seen = generation;
    if (known && known.phase !== 'settled' && known.phase !== 'busy') return undefined;
    if (known && known.retryAt > Date.now()) return undefined;
    const key = known?.key ?? this.options.pathTemplate.tryParse(relativePath);
    if (!key) return undefined;
    const t: Tracked = known ?? {
      key,
      relativePath,
      file,
      phase: 'settled',
      verdict: false,
      seen: generation,
      committedOffset: 0,
      followFailures: 0,
      retryAt: 0,
    };
    t.seen = generation;
    this.tracked.set(relativePath, t);
    // Claimed before the first await: several events for one new file must not each start it.
    const before = t.phase;
    t.phase = 'examining';
    const info = await lstat(file).catch(() => undefined);
    // Symlinks are not logs: following one could archive a file from outside the base folder.
    const unchanged = t.settled?.size === info?.size && t.settled?.mtimeMs === info?.mtimeMs;
    if (!info?.isFile() || unchanged) {
      t.phase = before;
      return undefined;
    }
    return t; // `examining` until decide() follows or queues it
  }

  /** Finished ones (marker, or the completion rule) go to the ship queue; the others are followed. */
  private async decide(attempts: Tracked[]): Promise<void> {
    if (attempts.length === 0) return;
    const marked = await mapLimit(attempts, FILE_CONCURRENCY, (t) => hasCompletionMarker(t.file));
    const open = attempts.filter((_, i) => !marked[i]);
    const verdicts = open.length
      ? await this.completion.judge(open, this.stopping.signal).catch((err) => {
          this.options.logger.warn({ err }, 'the completion rule failed; following the attempts');
          return open.map((): Verdict => false);
        })
      : [];
    let next = 0;
    for (const [i, t] of attempts.entries()) {
      if (this.stopping.signal.aborted) return;
      const verdict = marked[i] ? {} : verdicts[next++]!;
      if (verdict) await this.enqueue(t, verdict);
      else this.startFollow(t);
    }
  }

  private async enqueue(t: Tracked, end: AttemptEnd): Promise<void> {
    const info = await lstat(t.file).catch(() => undefined);
    if (!info?.isFile()) {
      t.phase = 'settled';
      return;
    }
    t.phase = 'queued';
    this.queue.add({ id: t.relativePath, mtimeMs: info.mtimeMs, tracked: t, end });
  }

  /** Ships one finished log from the queue, unless the catalog says it is archived as it is. */
  private async shipFinished(job: FinishedJob, signal: AbortSignal): Promise<void> {
    const t = job.tracked;
    const { catalog, shipper, logger } = this.options;
    const info = await lstat(t.file).catch(() => undefined);
    if (!info?.isFile()) {
      this.tracked.delete(t.relativePath); // removed meanwhile (e.g. shipped by someone else)
      return;
    }
    // An agent restarted over thousands of shipped logs must not hash each one again: recorded
    // with this size by a ship that ended after the file's last change is proof enough.
    const record = await catalog.get(t.key);
    const archived =
      (record?.state === 'shipped' || record?.state === 'abandoned') &&
      record.size === info.size &&
      record.storeUrl === shipper.storeUrl &&
      (record.shippedAt?.getTime() ?? 0) >= info.mtimeMs &&
      // A ship killed after recording still has its journal or lock to clean up.
      !(await shipper.interrupted(t.file));
    if (!archived) {
      const timer = this.options.metrics?.shipTimer();
      try {
        const result = await shipper.shipFile(t.file, { signal, lock: 'fail', end: job.end });
        timer?.();
        this.options.metrics?.shipped(result.outcome);
        logger.info(
          { relativePath: t.relativePath, outcome: result.outcome, size: result.size },
          'finished attempt archived',
        );
      } catch (err) {
        if (err instanceof AttemptBusyError) {
          t.phase = 'busy'; // another process ships it; the next scan looks again
          return;
        }
        timer?.();
        throw err; // counted as failed by the queue's onFailure
      }
    }
    t.phase = 'settled';
    t.settled = { size: info.size, mtimeMs: info.mtimeMs };
  }

  private startFollow(t: Tracked): void {
    const controller = new AbortController();
    t.phase = 'following';
    t.verdict = false;
    t.followedAt = Date.now();
    t.flushedAt = t.caughtUpAt = undefined;
    const done = this.follow(t, controller.signal)
      .then(
        () => {
          t.followFailures = 0;
        },
        (err) => {
          this.options.metrics?.failed(err);
          this.options.metrics?.retried(err);
          t.followFailures++;
          const delayMs = backoffDelay(Math.min(t.followFailures, 30), {
            baseDelayMs: 1000,
            maxDelayMs: this.options.retryMaxIntervalMs ?? 10_000,
          });
          this.options.logger.error(
            { err, relativePath: t.relativePath, failures: t.followFailures, retryInMs: delayMs },
            'following the attempt failed; trying again',
          );
          t.phase = 'settled';
          t.settled = undefined;
          t.retryAt = Date.now() + delayMs;
        },
      )
      .finally(() => {
        t.follow = undefined;
      });
    t.follow = { controller, done };
  }

  private async follow(t: Tracked, signal: AbortSignal): Promise<void> {
    const { shipper, catalog, agentUrl, logger } = this.options;
    const log = logger.child({ relativePath: t.relativePath });
    log.info('following a running attempt');
    let result: Awaited<ReturnType<Shipper['follow']>>;
    try {
      result = await shipper.follow(t.file, {
        signal,
        agentUrl,
        lock: 'fail',
        flushIntervalMs: this.options.flushIntervalMs,
        pollIntervalMs: this.options.pollIntervalMs,
        heartbeatIntervalMs: this.options.heartbeatIntervalMs,
        isFinished: async (file) => ((await hasCompletionMarker(file)) ? true : t.verdict),
        onFlush: (committed) => {
          t.committedOffset = committed;
          t.flushedAt = Date.now();
          if (t.failingSince !== undefined) {
            log.info({ committedOffset: committed }, 'the store answers again; caught up');
            t.failingSince = undefined;
            this.queue.retryNow();
          }
        },
        onRetry: (err, failures, delayMs) => {
          this.options.metrics?.retried(err);
          t.failingSince ??= Date.now();
          if (failures === 1 || failures % 10 === 0) {
            const level = err instanceof BackendUnavailableError ? 'warn' : 'error';
            log[level](
              { err, failures, retryInMs: delayMs, committedOffset: t.committedOffset },
              'the store or catalog is unavailable; the local log is kept and shipping resumes when it answers',
            );
          }
        },
      });
    } catch (err) {
      if (!(err instanceof AttemptBusyError)) throw err;
      // `tasklog run` (or a `tasklog ship --follow`) ships it; the proxy still reads it here.
      t.phase = 'busy';
      if (!t.agentUrlRecorded) {
        await catalog.upsert(t.key, { relativePath: t.relativePath, agentUrl });
        t.agentUrlRecorded = true;
      }
      return;
    }
    if (result.outcome === 'stopped') {
      t.phase = 'settled';
      t.settled = undefined;
      log.info({ committedOffset: result.committedOffset }, 'stopped following');
      return;
    }
    this.options.metrics?.shipped(result.outcome);
    t.phase = 'settled';
    t.settled = await lstat(t.file).then(
      (s) => ({ size: s.size, mtimeMs: s.mtimeMs }),
      // Deleted after shipping (delete_local_copy): nothing left to watch.
      () => ({ size: result.size, mtimeMs: 0 }),
    );
    log.info(
      { outcome: result.outcome, size: result.size, end: t.verdict || 'marker' },
      'attempt archived',
    );
  }

  /**
   * How far shipping is behind the followed logs: the bytes written locally but not yet committed
   * in the store, and for how long (seconds) the oldest of them may have waited: since the last
   * flush of its attempt, or since a call last found that attempt caught up, whichever is later.
   * Stats every followed log (bounded concurrency): meant for a scrape, not a hot loop.
   */
  async shipLag(now = Date.now()): Promise<{ bytes: number; seconds: number }> {
    const followed = [...this.tracked.values()].filter((t) => t.phase === 'following');
    const sizes = await mapLimit(followed, FILE_CONCURRENCY, (t) =>
      lstat(t.file).then(
        (s) => s.size,
        () => 0,
      ),
    );
    let bytes = 0;
    let since = now;
    for (const [i, t] of followed.entries()) {
      const behind = sizes[i]! - t.committedOffset;
      if (behind <= 0) t.caughtUpAt = now;
      else {
        bytes += behind;
        since = Math.min(since, Math.max(t.flushedAt ?? t.followedAt ?? now, t.caughtUpAt ?? 0));
      }
    }
    return { bytes, seconds: (now - since) / 1000 };
  }

  /** Asks the completion rule about every followed attempt (once per scan, batched). */
  private async refreshVerdicts(): Promise<void> {
    const followed = [...this.tracked.values()].filter((t) => t.phase === 'following');
    if (followed.length === 0) return;
    const verdicts = await this.completion.judge(followed, this.stopping.signal);
    for (const [i, t] of followed.entries()) t.verdict = verdicts[i] ?? false;
  }
}
