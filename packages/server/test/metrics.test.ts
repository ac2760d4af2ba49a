import { join } from 'node:path';
import { BackendUnavailableError, ConflictError } from '@tasklog/core';
import { AgentMetrics, createToken, Metrics, tokensAuthenticator } from '@tasklog/server';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../../../test/support/prometheus-text.js';
import { agentRouteOf, proxyRouteOf } from '../src/metrics-http.js';
import { closedAfterEach, key, logPath, startFixture } from './fixture.js';

const PROM_TEXT = /^text\/plain; version=0\.0\.4; charset=utf-8$/;

async function scrape(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/metrics`, { headers });
  const text = await res.text();
  return { res, text, metrics: res.ok ? parsePrometheusText(text) : undefined };
}

describe('the Prometheus text reader the tests use', () => {
  it('reads what prom-client writes, histograms included', async () => {
    const metrics = new Metrics();
    new AgentMetrics(metrics, 'file:///tmp/archive').shipTimer()();
    const parsed = parsePrometheusText((await metrics.scrape()).body);
    expect(parsed.value('tasklog_ship_duration_seconds_count', { backend: 'file' })).toBe(1);
    expect(parsed.families.get('process_cpu_seconds_total')?.type).toBe('counter');
  });

  it.each([
    ['a sample without a value', 'x_total{a="b"}\n'],
    ['an unquoted label value', '# TYPE x counter\nx{a=b} 1\n'],
    ['a value that is no number', '# TYPE x counter\nx 1O\n'],
    ['a second TYPE', '# TYPE x counter\n# TYPE x gauge\nx 1\n'],
    ['a series twice', '# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n'],
    ['a malformed TYPE', '# TYPE x\nx 1\n'],
    ['no final newline', '# TYPE x gauge\nx 1'],
    [
      'buckets that do not add up',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    ],
  ])('rejects %s', (_, text) => {
    expect(() => parsePrometheusText(text)).toThrow();
  });
});

describe('route labels', () => {
  it('are a fixed set, never a path', () => {
    const k = key();
    const log = logPath(k).split('?')[0]!;
    expect(proxyRouteOf(log)).toBe('log');
    expect(proxyRouteOf(`${log}/search`)).toBe('search');
    expect(proxyRouteOf(`${log}/elsewhere`)).toBe('other');
    expect(proxyRouteOf('/api/v1/attempts')).toBe('attempts');
    expect(proxyRouteOf('/api/v1/dags/etl/runs')).toBe('browse');
    expect(proxyRouteOf('/health/ready')).toBe('health');
    expect(proxyRouteOf('/metrics')).toBe('metrics');
    expect(proxyRouteOf('/dags/etl')).toBe('ui');
    expect(proxyRouteOf('/assets/index-abc.js')).toBe('ui');
    expect(proxyRouteOf('/wp-admin/setup.php')).toBe('other');
    expect(agentRouteOf('/log/dag_id=etl/run_id=x/task_id=y/attempt=1.log')).toBe('log');
    expect(agentRouteOf('/health')).toBe('health');
  });
});

describe('GET /metrics on the proxy', () => {
  const start = closedAfterEach(startFixture);

  it('after a log GET shows the request by route and status, its bytes and the live gauges', async () => {
    const f = await start();
    const k = key();
    const log = Buffer.from('line one\nline two é€\n'.repeat(100));
    await f.archive(k, log);
    const got = await fetch(f.url + logPath(k));
    expect(got.status).toBe(200);
    expect((await got.arrayBuffer()).byteLength).toBe(log.length);
    expect((await fetch(`${f.url}/no/such/${k.runId}`)).status).toBe(404);

    const { res, text, metrics } = await scrape(f.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(PROM_TEXT);
    const request = { route: 'log', method: 'GET', status: '200' };
    expect(metrics!.value('tasklog_http_request_duration_seconds_count', request)).toBe(1);
    expect(metrics!.value('tasklog_http_response_bytes_total', { route: 'log' })).toBe(log.length);
    expect(
      metrics!.value('tasklog_http_request_duration_seconds_count', {
        route: 'other',
        status: '404',
      }),
    ).toBe(1);
    expect(metrics!.value('tasklog_live_followers')).toBe(0);
    expect(metrics!.has('tasklog_live_upstreams')).toBe(true);
    expect(metrics!.has('process_resident_memory_bytes')).toBe(true);
    // No label value names the attempt: not its run, task or path.
    for (const s of metrics!.samples) {
      for (const v of Object.values(s.labels)) {
        expect(v).not.toContain(k.runId);
        expect(v).not.toContain(k.taskId);
        expect(v).not.toContain('/');
      }
    }
    expect(text).not.toContain(k.runId);
  });

  it('counts live followers and the followers refused by a limit', async () => {
    const f = await start({ deps: { maxFollowersPerAttempt: 1, live: { pollIntervalMs: 20 } } });
    const k = key();
    await f.writeRunning(k, Buffer.from('running\n'));
    const first = new AbortController();
    expect((await fetch(f.url + logPath(k, 'follow=true'), { signal: first.signal })).status).toBe(
      200,
    );
    expect((await fetch(f.url + logPath(k, 'follow=true'))).status).toBe(503);
    const { metrics } = await scrape(f.url);
    expect(metrics!.value('tasklog_live_followers')).toBe(1);
    expect(metrics!.value('tasklog_live_follower_refusals_total', { limit: 'per_attempt' })).toBe(
      1,
    );
    expect(metrics!.value('tasklog_live_follower_refusals_total', { limit: 'total' })).toBe(0);
    first.abort();
  });

  it('needs the admin grant when auth is on', async () => {
    const dir = (await start()).dir;
    const file = join(dir, 'tokens.json');
    const admin = await createToken(file, { name: 'ops', dags: [], admin: true });
    const reader = await createToken(file, { name: 'reader', dags: ['*'], admin: false });
    const f = await start({ deps: { auth: tokensAuthenticator(file) } });
    expect((await scrape(f.url)).res.status).toBe(401);
    expect((await scrape(f.url, { authorization: `Bearer ${reader}` })).res.status).toBe(403);
    const ok = await scrape(f.url, { authorization: `Bearer ${admin}` });
    expect(ok.res.status).toBe(200);
    expect(ok.metrics!.has('tasklog_http_request_duration_seconds_bucket')).toBe(true);
  });

  it('keeps two apps in one process apart', async () => {
    const a = await start();
    const b = await start();
    await fetch(`${a.url}/health/live`);
    await fetch(`${a.url}/health/live`);
    const route = { route: 'health', status: '200' };
    const count = 'tasklog_http_request_duration_seconds_count';
    expect((await scrape(a.url)).metrics!.value(count, route)).toBe(2);
    expect((await scrape(b.url)).metrics!.value(count, route)).toBe(0);
  });
});

describe('AgentMetrics', () => {
  it('counts a failure and a retry by the error code, UNKNOWN for an uncoded error', async () => {
    const metrics = new Metrics();
    const agent = new AgentMetrics(metrics, 's3://bucket/logs');
    agent.failed(new BackendUnavailableError('the store does not answer'));
    agent.failed(new ConflictError('other content'));
    agent.failed(new Error('a bug'));
    agent.retried(new BackendUnavailableError('the store does not answer'));
    const parsed = parsePrometheusText((await metrics.scrape()).body);
    const failures = (code: string) =>
      parsed.value('tasklog_ship_failures_total', { backend: 's3', code });
    expect(failures('BACKEND_UNAVAILABLE')).toBe(1);
    expect(failures('CONFLICT')).toBe(1);
    expect(failures('UNKNOWN')).toBe(1);
    expect(parsed.value('tasklog_ships_total', { outcome: 'failed' })).toBe(3);
    expect(parsed.value('tasklog_ship_retries_total', { code: 'BACKEND_UNAVAILABLE' })).toBe(1);
  });

  it('reads the followed attempts, backlog and lag of the agent it watches at each scrape', async () => {
    const metrics = new Metrics();
    const agent = new AgentMetrics(metrics, 'cloud-logging://project/logs');
    let lagCalls = 0;
    agent.watch({
      status: () => ({ following: 3, backlog: 7 }),
      shipLag: async () => {
        lagCalls++;
        return { bytes: 1234, seconds: 5.5 };
      },
    });
    const parsed = parsePrometheusText((await metrics.scrape()).body);
    expect(parsed.value('tasklog_agent_followed_attempts')).toBe(3);
    expect(parsed.value('tasklog_agent_backlog')).toBe(7);
    expect(parsed.value('tasklog_agent_ship_lag_bytes')).toBe(1234);
    expect(parsed.value('tasklog_agent_ship_lag_seconds')).toBe(5.5);
    expect(lagCalls).toBe(1); // both lag gauges share one look at the files
    expect(parsed.has('tasklog_shipped_bytes_total', { backend: 'cloud-logging' })).toBe(true);
  });
});
