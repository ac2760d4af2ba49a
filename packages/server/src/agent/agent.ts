import { opendir, stat } from 'node:fs/promises';
import { join, relative, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AttemptKey,
  type Catalog,
  COMPLETION_MARKER_SUFFIX,
  type PathTemplate,
  type Shipper,
} from '@tasklog/core';
import type { Logger } from 'pino';
import { completionMarkerExists } from './agent-log-route.js';

export interface AgentOptions {
  /** Ships followed attempts; its base log folder must be `baseLogFolder`. */
  shipper: Shipper;
  catalog: Catalog;
  pathTemplate: PathTemplate;
  /** Folder the workers write logs under. */
  baseLogFolder: string;
  /** The URL the proxy reaches this agent's HTTP server at; recorded as each attempt's `agentUrl`. */
  agentUrl: string;
  logger: Logger;
  /** How often the base folder is scanned for new attempts; default 1000 ms. */
  scanIntervalMs?: number;
  /** How often a followed attempt's `heartbeatAt` is renewed; default 30000 ms. */
  heartbeatIntervalMs?: number;
  /** A log that has not grown for this long, without a completion marker, is abandoned; default 3600000 ms. */
  idleTimeoutMs?: number;
  /** Passed to `Shipper.follow`; default 5000 ms. */
  flushIntervalMs?: number;
  /** Passed to `Shipper.follow`; default 200 ms. */
  pollIntervalMs?: number;
}

interface Followed {
  relativePath: string;
  controller: AbortController;
  done: Promise<void>;
}

/**
 * Watches the base log folder for running attempts and ships each one while it is written
 * (`Shipper.follow`, one per attempt, concurrently), keeping its catalog record `running` with
 * this agent's URL and a heartbeat, so the proxy knows where to ask for the live log.
 *
 * The folder is scanned by polling: `fs.watch` with `recursive` is not supported on Linux in
 * Node 20, and a scan per second costs little next to the logs themselves.
 *
 * An attempt whose log stops growing for `idleTimeoutMs` without a completion marker is
 * abandoned: following stops (what was read is flushed to the store), and the catalog state
 * becomes `abandoned`. The agent does not write the marker itself: the writer may still be
 * alive and the marker means "this is the whole log". If the file grows again later it is
 * followed again (the store resumes from its committed offset).
 *
 * `close()` stops following: attempts stay `running` in the catalog and resume on the next start.
 */
export class Agent {
  private readonly base: string;
  private readonly followed = new Map<string, Followed>();
  /** Size at which an attempt was abandoned; it is followed again only if it grows. */
  private readonly abandonedAt = new Map<string, number>();
  private readonly stopping = new AbortController();
  private scanLoop?: Promise<void>;
  private closing?: Promise<void>;

  constructor(private readonly options: AgentOptions) {
    this.base = resolve(options.baseLogFolder);
  }

  /** Relative paths of the attempts being followed now. */
  get following(): string[] {
    return [...this.followed.keys()].sort();
  }

  /** Starts scanning; the first scan runs at once. */
  start(): void {
    this.scanLoop ??= this.loop();
  }

  /** Stops scanning and following, and waits until every follow has flushed and returned. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopping.abort();
      await this.scanLoop;
      for (const f of this.followed.values()) f.controller.abort();
      await Promise.allSettled([...this.followed.values()].map((f) => f.done));
    })();
    return this.closing;
  }

  /** One pass over the base folder; starts a follow for each new running attempt. */
  async scan(): Promise<void> {
    const stack = [this.base];
    while (stack.length && !this.stopping.signal.aborted) {
      const dir = stack.pop()!;
      const files: string[] = [];
      try {
        for await (const entry of await opendir(dir)) {
          const child = join(dir, entry.name);
          if (entry.isDirectory()) stack.push(child);
          else if (entry.isFile() && !entry.name.endsWith(COMPLETION_MARKER_SUFFIX)) {
            files.push(child);
          }
        }
      } catch (err) {
        // A folder removed between listing and reading, or the base not created yet.
        this.options.logger.debug({ err, dir }, 'cannot list folder');
        continue;
      }
      for (const file of files) {
        const relativePath = relative(this.base, file).split(sep).join('/');
        if (this.followed.has(relativePath)) continue;
        const key = this.options.pathTemplate.tryParse(relativePath);
        if (!key) continue;
        if (await completionMarkerExists(file)) continue; // finished: `tasklog ship` handles it
        const abandonedSize = this.abandonedAt.get(relativePath);
        if (abandonedSize !== undefined) {
          const size = await stat(file).then(
            (s) => s.size,
            () => abandonedSize,
          );
          if (size <= abandonedSize) continue;
          this.abandonedAt.delete(relativePath);
        }
        this.startFollow(file, relativePath, key);
      }
    }
  }

  private async loop(): Promise<void> {
    const { signal } = this.stopping;
    const every = this.options.scanIntervalMs ?? 1000;
    while (!signal.aborted) {
      try {
        await this.scan();
      } catch (err) {
        this.options.logger.error({ err }, 'scanning the base log folder failed');
      }
      await sleep(every, undefined, { signal }).catch(() => undefined);
    }
  }

  private startFollow(file: string, relativePath: string, key: AttemptKey): void {
    const controller = new AbortController();
    const entry: Followed = { relativePath, controller, done: Promise.resolve() };
    this.followed.set(relativePath, entry);
    entry.done = this.follow(file, relativePath, key, controller)
      .catch((err) => {
        this.options.logger.error({ err, relativePath }, 'following the attempt failed');
      })
      .finally(() => {
        this.followed.delete(relativePath);
      });
  }

  private async follow(
    file: string,
    relativePath: string,
    key: AttemptKey,
    controller: AbortController,
  ): Promise<void> {
    const { catalog, shipper, agentUrl, logger } = this.options;
    const heartbeatIntervalMs = this.options.heartbeatIntervalMs ?? 30_000;
    const idleTimeoutMs = this.options.idleTimeoutMs ?? 3_600_000;
    const log = logger.child({ relativePath });

    await catalog.upsert(key, {
      relativePath,
      state: 'running',
      agentUrl,
      heartbeatAt: new Date(),
    });
    log.info('following a running attempt');

    // Heartbeats touch only heartbeatAt: writing `state` here could race with the follow's own
    // `shipping`/`shipped` updates and set a shipped attempt back to running.
    const heartbeat = setInterval(() => {
      catalog
        .upsert(key, { relativePath, agentUrl, heartbeatAt: new Date() })
        .catch((err) => log.warn({ err }, 'heartbeat failed'));
    }, heartbeatIntervalMs);

    let abandoned = false;
    let lastSize = -1;
    let lastGrowth = Date.now();
    const idleCheck = setInterval(
      () => {
        stat(file).then(
          ({ size }) => {
            if (size !== lastSize) {
              lastSize = size;
              lastGrowth = Date.now();
            } else if (Date.now() - lastGrowth >= idleTimeoutMs) {
              abandoned = true;
              controller.abort();
            }
          },
          () => undefined,
        );
      },
      Math.max(10, Math.min(1000, Math.floor(idleTimeoutMs / 4))),
    );

    try {
      const result = await shipper.follow(file, {
        signal: controller.signal,
        flushIntervalMs: this.options.flushIntervalMs,
        pollIntervalMs: this.options.pollIntervalMs,
      });
      if (result.outcome === 'stopped') {
        if (abandoned) {
          this.abandonedAt.set(relativePath, Math.max(lastSize, 0));
          await catalog.upsert(key, { relativePath, state: 'abandoned', heartbeatAt: new Date() });
          log.warn(
            { idleTimeoutMs, committedOffset: result.committedOffset },
            'attempt abandoned: its log stopped growing without a completion marker',
          );
        } else {
          log.info({ committedOffset: result.committedOffset }, 'stopped following');
        }
      } else {
        log.info({ outcome: result.outcome, size: result.size }, 'attempt shipped');
      }
    } finally {
      clearInterval(heartbeat);
      clearInterval(idleCheck);
    }
  }
}
