import { type Catalog, isTasklogError, type LogStore } from '@tasklog/core';
import { Counter, Gauge, Histogram } from 'prom-client';
import { backendOf, type Metrics } from './metrics.js';
import { countCatalogErrors, countStoredBytes } from './metrics-instrument.js';

/** What the agent's gauges read at each scrape (the `Agent` has both). */
export interface AgentGaugeSource {
  status(): { following: number; backlog: number };
  shipLag(): Promise<{ bytes: number; seconds: number }>;
}

/**
 * The agent's shipping metrics, for one store (the `backend` label is its URL's scheme):
 *
 * - `tasklog_shipped_bytes_total{backend}`: bytes the store committed — each flush of a followed
 *   log, the rest at its finish, the bytes of each upload — counted by the store the shipper
 *   writes through (`instrumentStore`), so a log shipped from scratch adds exactly its size, and
 *   a resumed ship or follow only what it sent.
 * - `tasklog_ships_total{backend,outcome}`: ships (finished logs) and follows that ended:
 *   `shipped`, `already-shipped` or `failed`.
 * - `tasklog_ship_duration_seconds{backend}`: how long each ship of a finished log took.
 * - `tasklog_ship_failures_total{backend,code}`: ships and follows that failed, by the error's
 *   code (`BACKEND_UNAVAILABLE`, `CONFLICT`, ...; `UNKNOWN` for an uncoded one).
 * - `tasklog_ship_retries_total{backend,code}`: tries again after a failure: each failed ship or
 *   follow (the agent retries it after a backoff) and each outage a follow rides out.
 * - `tasklog_agent_catalog_errors_total`: catalog calls that failed (`instrumentCatalog`).
 * - `tasklog_agent_followed_attempts`, `tasklog_agent_backlog`, `tasklog_agent_ship_lag_bytes`,
 *   `tasklog_agent_ship_lag_seconds`: read from the agent at each scrape (`watch`).
 *
 * Records shipped (per line, for the record stores) are not counted: the shipper hands bytes to
 * the store, and only the store's sink splits them into records.
 */
export class AgentMetrics {
  readonly backend: string;
  readonly #bytes: Counter<'backend'>;
  readonly #ships: Counter<'backend' | 'outcome'>;
  readonly #duration: Histogram<'backend'>;
  readonly #failures: Counter<'backend' | 'code'>;
  readonly #retries: Counter<'backend' | 'code'>;
  readonly #catalogErrors: Counter;
  #source?: AgentGaugeSource;
  #lastLag?: { at: number; value: Promise<{ bytes: number; seconds: number }> };

  constructor(metrics: Metrics, storeUrl: string) {
    this.backend = backendOf(storeUrl);
    const registers = [metrics.registry];
    this.#bytes = new Counter({
      name: 'tasklog_shipped_bytes_total',
      help: 'Bytes committed to the store: flushes of followed logs, finishes and uploads.',
      labelNames: ['backend'],
      registers,
    });
    this.#ships = new Counter({
      name: 'tasklog_ships_total',
      help: 'Ships of finished logs and follows that ended, by outcome (shipped, already-shipped, failed).',
      labelNames: ['backend', 'outcome'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'tasklog_ship_duration_seconds',
      help: 'Time one ship of a finished log took, successful or not.',
      labelNames: ['backend'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
      registers,
    });
    this.#failures = new Counter({
      name: 'tasklog_ship_failures_total',
      help: 'Ships and follows that failed, by error code.',
      labelNames: ['backend', 'code'],
      registers,
    });
    this.#retries = new Counter({
      name: 'tasklog_ship_retries_total',
      help: 'Ships and follows tried again after a failure of the store or catalog, by error code.',
      labelNames: ['backend', 'code'],
      registers,
    });
    this.#catalogErrors = new Counter({
      name: 'tasklog_agent_catalog_errors_total',
      help: 'Catalog calls of the agent and its shipper that failed.',
      registers,
    });
    // The series a dashboard plots from the start, before the first ship.
    const backend = this.backend;
    this.#bytes.inc({ backend }, 0);
    for (const outcome of ['shipped', 'already-shipped', 'failed']) {
      this.#ships.inc({ backend, outcome }, 0);
    }
    this.#catalogErrors.inc(0);
    const self = this;
    new Gauge({
      name: 'tasklog_agent_followed_attempts',
      help: 'Running attempts the agent follows now.',
      registers,
      collect() {
        this.set(self.#source?.status().following ?? 0);
      },
    });
    new Gauge({
      name: 'tasklog_agent_backlog',
      help: 'Finished logs waiting to be shipped or being shipped (the sweep backlog).',
      registers,
      collect() {
        this.set(self.#source?.status().backlog ?? 0);
      },
    });
    new Gauge({
      name: 'tasklog_agent_ship_lag_bytes',
      help: 'Bytes of the followed logs written locally but not yet committed in the store.',
      registers,
      async collect() {
        this.set((await self.#lag()).bytes);
      },
    });
    new Gauge({
      name: 'tasklog_agent_ship_lag_seconds',
      help: 'How long the oldest byte not yet committed in the store may have waited.',
      registers,
      async collect() {
        this.set((await self.#lag()).seconds);
      },
    });
  }

  /** Reports `source`'s followed attempts, backlog and lag at each scrape. */
  watch(source: AgentGaugeSource): void {
    this.#source = source;
  }

  /** One stat of the followed logs per scrape, shared by the two lag gauges. */
  #lag(): Promise<{ bytes: number; seconds: number }> {
    const now = Date.now();
    if (!this.#lastLag || now - this.#lastLag.at > 500) {
      const value = this.#source?.shipLag() ?? Promise.resolve({ bytes: 0, seconds: 0 });
      this.#lastLag = { at: now, value };
    }
    return this.#lastLag.value;
  }

  /** `store`, with the bytes it commits counted in `tasklog_shipped_bytes_total`. */
  instrumentStore(store: LogStore): LogStore {
    const counter = this.#bytes.labels({ backend: this.backend });
    return countStoredBytes(store, (n) => counter.inc(n));
  }

  /** `catalog`, with its failed calls counted in `tasklog_agent_catalog_errors_total`. */
  instrumentCatalog(catalog: Catalog): Catalog {
    return countCatalogErrors(catalog, () => this.#catalogErrors.inc());
  }

  /** Starts timing a ship of a finished log; call the result when it ends, either way. */
  shipTimer(): () => void {
    return this.#duration.startTimer({ backend: this.backend });
  }

  /** A ship or a follow ended with the log archived. */
  shipped(outcome: 'shipped' | 'already-shipped'): void {
    this.#ships.inc({ backend: this.backend, outcome });
  }

  /** A ship or a follow ended with `err` (the agent tries it again later). */
  failed(err: unknown): void {
    this.#ships.inc({ backend: this.backend, outcome: 'failed' });
    this.#failures.inc({ backend: this.backend, code: codeOf(err) });
  }

  /** The store or catalog failed with `err` and the work is tried again after a backoff. */
  retried(err: unknown): void {
    this.#retries.inc({ backend: this.backend, code: codeOf(err) });
  }
}

/** The error's tasklog code; `UNKNOWN` for anything else (a bug, an uncoded SDK error). */
function codeOf(err: unknown): string {
  return isTasklogError(err) ? err.code : 'UNKNOWN';
}
