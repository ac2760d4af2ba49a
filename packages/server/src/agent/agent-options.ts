import type { AttemptEnd, Catalog, PathTemplate, Shipper } from '@tasklog/core';
import type { Logger } from 'pino';
import type { AgentMetrics } from '../metrics-agent.js';
import type { CompletionRule, TrackedAttempt, Verdict } from './completion.js';
import type { ShipJob } from './ship-queue.js';

export interface AgentOptions {
  /** Ships the attempts; its base log folder must be `baseLogFolder`. */
  shipper: Shipper;
  catalog: Catalog;
  pathTemplate: PathTemplate;
  /** Folder the workers write logs under. */
  baseLogFolder: string;
  /** The URL the proxy reaches this agent's HTTP server at; recorded as each attempt's `agentUrl`. */
  agentUrl: string;
  logger: Logger;
  /** Decides when an attempt without a completion marker has finished; default `idle` → abandoned. */
  completion?: CompletionRule;
  /** A log that has not grown for this long is finished by the default rule; default 3,600,000 ms. */
  idleTimeoutMs?: number;
  /** Full scans of the base folder (the safety net behind folder watches); default 2000 ms. */
  scanIntervalMs?: number;
  /** Finished logs shipped at once; default 4. */
  shipConcurrency?: number;
  /** How often a followed attempt's `heartbeatAt` is renewed; default 30,000 ms. */
  heartbeatIntervalMs?: number;
  /** Passed to `Shipper.follow`; default 5000 ms. */
  flushIntervalMs?: number;
  /** Passed to `Shipper.follow`; default 200 ms. */
  pollIntervalMs?: number;
  /** Longest wait before a failed ship is tried again; default 10,000 ms. */
  retryMaxIntervalMs?: number;
  /**
   * Where the agent counts its ships, failures and retries and reports its backlog and lag. The
   * bytes shipped and the catalog's errors are counted by the store and catalog the shipper uses:
   * build it over `metrics.instrumentStore(store)` and `metrics.instrumentCatalog(catalog)`.
   */
  metrics?: AgentMetrics;
}

/** What the agent knows of one attempt log under the base folder. */
export interface Tracked extends TrackedAttempt {
  phase: 'examining' | 'following' | 'queued' | 'settled' | 'busy';
  /** The running follow, while `following`. */
  follow?: { controller: AbortController; done: Promise<void> };
  /** The last completion verdict (refreshed each scan) for a followed attempt. */
  verdict: Verdict;
  /** Size and mtime of the log when it was last archived complete (`settled`). */
  settled?: { size: number; mtimeMs: number };
  /** Scan generation in which the file was last seen; entries not seen in a full scan go. */
  seen: number;
  /** Bytes the store has committed, and when the last store failure happened. */
  committedOffset: number;
  /** Since when the store has been failing for this attempt's follow. */
  failingSince?: number;
  /** Failed follows in a row, and when the next may start. */
  followFailures: number;
  retryAt: number;
  /** This agent's URL is recorded for an attempt another process ships (`busy`). */
  agentUrlRecorded?: boolean;
  /** When the current follow began, its last flush was, and a scrape last saw it caught up. */
  followedAt?: number;
  flushedAt?: number;
  caughtUpAt?: number;
}

export interface FinishedJob extends ShipJob {
  readonly tracked: Tracked;
  readonly end: AttemptEnd;
}

export interface AgentStatus {
  /** Attempts followed now (running). */
  following: number;
  /** Finished logs waiting to be shipped or being shipped. */
  backlog: number;
  /** Attempts whose shipping failed and is being retried. */
  failing: { relativePath: string; failures: number }[];
  /** Folders watched for changes. */
  watchedFolders: number;
  /** Since when (ISO-8601) the store has been failing for a followed attempt, if it is. */
  storeFailingSince?: string;
}
