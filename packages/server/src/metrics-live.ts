import { Counter, Gauge } from 'prom-client';
import type { FollowerLimits } from './live/follow-route.js';
import type { LiveHub } from './live/live-hub.js';
import type { Metrics } from './metrics.js';

/**
 * The proxy's live-follow metrics: `tasklog_live_followers` and `tasklog_live_upstreams` (read
 * from the limits and the hub at each scrape) and `tasklog_live_follower_refusals_total{limit}`.
 * Returns the refusal counter's feed, for `FollowerLimits`' `onRefused`.
 */
export function liveMetrics(
  metrics: Metrics,
  sources: { limits: () => FollowerLimits | undefined; hub?: LiveHub },
): (limit: 'total' | 'per_attempt') => void {
  const { hub, limits } = sources;
  new Gauge({
    name: 'tasklog_live_followers',
    help: 'Clients following a log (?follow=true) now.',
    registers: [metrics.registry],
    collect() {
      this.set(limits()?.following ?? 0);
    },
  });
  new Gauge({
    name: 'tasklog_live_upstreams',
    help: 'Connections to agents open now, one per attempt followed live (shared by its followers).',
    registers: [metrics.registry],
    collect() {
      this.set(hub?.upstreams ?? 0);
    },
  });
  const refusals = new Counter({
    name: 'tasklog_live_follower_refusals_total',
    help: 'Followers refused (503) by server.max_followers (total) or server.max_followers_per_attempt.',
    labelNames: ['limit'] as const,
    registers: [metrics.registry],
  });
  // Both series exist from the start, so a rate() over them needs no first refusal.
  refusals.inc({ limit: 'total' }, 0);
  refusals.inc({ limit: 'per_attempt' }, 0);
  return (limit) => refusals.inc({ limit });
}
