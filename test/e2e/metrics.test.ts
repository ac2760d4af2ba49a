import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { startService, writeHomeLog } from '../support/cli.js';
import { type Exposition, parsePrometheusText } from '../support/prometheus-text.js';
import { useTasklogHome } from '../support/tasklog-home.js';

const DAG = 'metrics_dag';
const RUN = 'manual__2024-06-01T08:00:00+00:00';
const TASK = 'load_rows';
const rel = (task: string) => `dag_id=${DAG}/run_id=${RUN}/task_id=${task}/attempt=1.log`;
const logApi = (task: string) =>
  `/api/v1/dags/${DAG}/runs/${encodeURIComponent(RUN)}/tasks/${task}/attempts/1/log`;

/** Scrapes `url`, checks that it is Prometheus text that names no attempt, and parses it. */
async function scrape(url: string): Promise<Exposition> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  const metrics = parsePrometheusText(await res.text());
  for (const sample of metrics.samples) {
    for (const value of Object.values(sample.labels)) {
      for (const id of [DAG, RUN, TASK, 'attempt=']) expect(value).not.toContain(id);
    }
  }
  return metrics;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const got = await probe();
    if (got !== undefined) return got;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(200);
  }
}

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const settings = {
  TASKLOG__AGENT__TOKEN_SECRET: randomBytes(64).toString('base64'),
  TASKLOG__AGENT__SCAN_INTERVAL: '0.2',
  TASKLOG__STORE__FLUSH_INTERVAL: '0.2',
  TASKLOG__LOGGING__LEVEL: 'warn',
};

describe('/metrics of the agent and the proxy while they ship and serve (local store)', () => {
  const cli = useTasklogHome('metrics', settings);
  const stops: (() => Promise<number | null>)[] = [];
  afterAll(async () => {
    for (const stop of stops) await stop();
  });

  it('counts the bytes of a shipped log, its ship, and the request that reads it back', async () => {
    const agent = await startService('agent', [], cli.env);
    stops.push(agent.stop);
    const before = await scrape(`${agent.url}/metrics`);
    const bytesBefore = before.value('tasklog_shipped_bytes_total', { backend: 'file' });
    expect(before.has('tasklog_shipped_bytes_total', { backend: 'file' })).toBe(true);

    const log = Buffer.from(
      Array.from({ length: 4000 }, (_, i) => `[2024-06-01 08:00:${i % 60}] row ${i} é€\n`).join(''),
    );
    const file = await writeHomeLog(cli.dir, rel(TASK), log);
    await writeFile(`${file}.done`, '{"state":"success","exitCode":0}\n');

    const after = await until('the ship counted', async () => {
      const m = await scrape(`${agent.url}/metrics`);
      return m.value('tasklog_ships_total', { outcome: 'shipped' }) >= 1 ? m : undefined;
    });
    expect(after.value('tasklog_shipped_bytes_total', { backend: 'file' }) - bytesBefore).toBe(
      log.length,
    );
    expect(after.value('tasklog_ships_total', { backend: 'file', outcome: 'shipped' })).toBe(1);
    expect(after.value('tasklog_ships_total', { outcome: 'failed' })).toBe(0);
    expect(after.value('tasklog_ship_duration_seconds_count', { backend: 'file' })).toBe(1);
    expect(after.has('tasklog_agent_backlog')).toBe(true);
    expect(after.has('tasklog_agent_ship_lag_seconds')).toBe(true);
    expect(after.has('process_cpu_seconds_total')).toBe(true);

    const serve = await startService('serve', [], cli.env);
    stops.push(serve.stop);
    const got = await fetch(serve.url + logApi(TASK));
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer()).equals(log)).toBe(true);
    const proxy = await scrape(`${serve.url}/metrics`);
    const request = { route: 'log', method: 'GET', status: '200' };
    expect(proxy.value('tasklog_http_request_duration_seconds_count', request)).toBe(1);
    expect(
      proxy.value('tasklog_http_response_bytes_total', { route: 'log' }),
    ).toBeGreaterThanOrEqual(log.length);
    expect(proxy.value('tasklog_live_followers')).toBe(0);
  });

  it('counts a failed ship by its code, on its own port with agent.metrics_port', async () => {
    const unreachable = await closedPort();
    const metricsPort = await closedPort();
    const env = {
      ...cli.env,
      TASKLOG_HOME: `${cli.dir}/unreachable-s3`,
      TASKLOG__STORE__URL: 's3://tasklog-logs/prefix',
      TASKLOG__S3__ENDPOINT: `http://127.0.0.1:${unreachable}`,
      TASKLOG__S3__FORCE_PATH_STYLE: 'true',
      TASKLOG__S3__MAX_ATTEMPTS: '1',
      TASKLOG__AGENT__METRICS_PORT: String(metricsPort),
      TASKLOG__AGENT__SHUTDOWN_TIMEOUT: '1', // its backlog never drains
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_REGION: 'us-east-1',
    };
    const file = await writeHomeLog(env.TASKLOG_HOME, rel('never_shipped'), 'one line\n');
    await writeFile(`${file}.done`, '');
    const agent = await startService('agent', [], env);
    stops.push(agent.stop);
    // The agent port no longer serves them; the metrics port does.
    expect((await fetch(`${agent.url}/metrics`)).status).toBe(404);
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    const failed = await until('a failure counted', async () => {
      const m = await scrape(metricsUrl);
      const code = { backend: 's3', code: 'BACKEND_UNAVAILABLE' };
      return m.value('tasklog_ship_failures_total', code) >= 1 ? m : undefined;
    });
    expect(
      failed.value('tasklog_ships_total', { backend: 's3', outcome: 'failed' }),
    ).toBeGreaterThan(0);
    expect(failed.value('tasklog_ship_retries_total', { backend: 's3' })).toBeGreaterThan(0);
    expect(failed.value('tasklog_shipped_bytes_total', { backend: 's3' })).toBe(0);
    expect(failed.value('tasklog_ships_total', { outcome: 'shipped' })).toBe(0);
  });
});
