// Driver of bench/live-tail.sh: follows a running attempt's log through `tasklog serve` with 1
// and then 1000 concurrent NDJSON followers while a writer appends timestamped lines, with
// `tail -F` on the same file as the baseline. Prints one JSON object with the latency samples'
// percentiles, the agent's upstream request count per phase and the proxy's peak RSS.
//
//   node bench/live-tail.mjs PROXY_URL LOG_FILE AGENT_STDERR SERVE_PID [LINES=200] [FOLLOWERS=1,1000]
//
// Clock: every timestamp is process.hrtime.bigint() (CLOCK_MONOTONIC), the same clock in the
// writer process and here, so write time and arrival time compare directly.
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

const [proxyUrl, logFile, agentStderr, servePid, linesArg, followersArg] = process.argv.slice(2);
const LINES = Number(linesArg ?? 200);
const FOLLOWERS = (followersArg ?? '1,1000').split(',').map(Number);
const DAG = 'bench';
const RUN = 'manual__2026-01-01T00:00:00+00:00';
const TASK = 'tail';
const PHASE_TIMEOUT_MS = 60_000;

const logUrl = `${proxyUrl}/api/v1/dags/${DAG}/runs/${encodeURIComponent(RUN)}/tasks/${TASK}/attempts/1/log`;
// One socket per follower: a follow request holds its socket until the log ends.
const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
const now = () => process.hrtime.bigint();

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
function summary(samples) {
  const ms = samples.map((ns) => Number(ns) / 1e6).sort((a, b) => a - b);
  return {
    samples: ms.length,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    max: ms[ms.length - 1] ?? Number.NaN,
  };
}
function vmHwmMb(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}
function vmRssMb(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}
function upstreamRequests() {
  // pino-http logs each request once, when it completes or is aborted.
  let n = 0;
  for (const line of readFileSync(agentStderr, 'utf8').split('\n')) {
    if (line.includes('"url":"/log/')) n++;
  }
  return n;
}

/** Collects, per phase, latency samples from lines `L <phase> <seq> <ns> …`. */
class LineSink {
  constructor(phase) {
    this.phase = phase;
    this.partial = '';
    this.seen = new Set();
    this.samples = [];
  }
  push(text, at) {
    const parts = (this.partial + text).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      const [tag, phase, seq, ns] = line.split(' ');
      if (tag !== 'L' || phase !== this.phase || this.seen.has(seq)) continue;
      this.seen.add(seq);
      this.samples.push(at - BigInt(ns));
    }
  }
  get done() {
    return this.seen.size >= LINES;
  }
}

async function waitRunning() {
  // GET /api/v1/attempts does not show agentUrl, so "running with its agent" is read from the
  // follow route's own answer: X-Tasklog-Live is true iff the record is running with an agentUrl.
  for (let i = 0; i < 300; i++) {
    const res = await fetch(`${proxyUrl}/api/v1/attempts?dagId=${DAG}`);
    const { attempts } = await res.json();
    if (attempts[0]?.state === 'running') {
      const head = await fetch(`${logUrl}?follow=true&format=ndjson`, { method: 'HEAD' });
      if (head.headers.get('x-tasklog-live') === 'true') return;
    }
    await sleep(100);
  }
  throw new Error('the attempt never showed as running with an agent in the catalog');
}

function openFollower(offset, sink) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      `${logUrl}?follow=true&format=ndjson&offset=${offset}`,
      { agent, headers: { accept: 'application/x-ndjson' } },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`follow answered ${res.statusCode}`));
          res.resume();
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          const at = now();
          buf += chunk;
          let nl = buf.indexOf('\n');
          while (nl >= 0) {
            const rec = JSON.parse(buf.slice(0, nl));
            buf = buf.slice(nl + 1);
            if (typeof rec.text === 'string') sink.push(rec.text, at);
            nl = buf.indexOf('\n');
          }
        });
        res.on('error', () => undefined);
        resolve({ req, live: res.headers['x-tasklog-live'] });
      },
    );
    req.on('error', reject);
  });
}

function writeLines(phase) {
  // A separate process, so that the followers' parsing does not delay the writes.
  const script = `
    const fs = require('node:fs');
    const fd = fs.openSync(process.argv[1], 'a');
    const [phase, lines] = [process.argv[2], Number(process.argv[3])];
    let i = 0;
    const tick = () => {
      fs.writeSync(fd, 'L ' + phase + ' ' + i + ' ' + process.hrtime.bigint() + ' INFO - step ' + i + ' of the bench task\\n');
      if (++i < lines) setTimeout(tick, 10 + Math.random() * 10);
      else fs.closeSync(fd);
    };
    tick();`;
  const child = spawn(process.execPath, ['-e', script, logFile, phase, String(LINES)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer exit ${code}`))));
  });
}

async function until(cond, ms) {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await sleep(20);
  return cond();
}

await waitRunning();
const tailSinks = new Map();
const tail = spawn('tail', ['-n', '0', '-F', logFile], { stdio: ['ignore', 'pipe', 'inherit'] });
tail.stdout.setEncoding('utf8');
tail.stdout.on('data', (chunk) => {
  const at = now();
  for (const sink of tailSinks.values()) sink.push(chunk, at);
});
await sleep(300); // tail -n 0 must have opened the file and set its watch before the first line

const phases = [];
try {
  for (const n of FOLLOWERS) {
    const phase = `p${n}`;
    const tailSink = new LineSink(phase);
    tailSinks.set(phase, tailSink);
    const before = upstreamRequests();
    const offset = statSync(logFile).size;
    const sinks = Array.from({ length: n }, () => new LineSink(phase));
    const opened = await Promise.all(sinks.map((s) => openFollower(offset, s)));
    // Let the hub open its upstream to the agent before the first line is written.
    await sleep(500);
    const t0 = Date.now();
    await writeLines(phase);
    const complete = await until(
      () => tailSink.done && sinks.every((s) => s.done),
      PHASE_TIMEOUT_MS,
    );
    const deliverSeconds = (Date.now() - t0) / 1000;
    for (const { req } of opened) req.destroy();
    await sleep(1000); // the agent logs the upstream request once the hub lets it go
    phases.push({
      followers: n,
      complete,
      deliverSeconds,
      live: opened.every((o) => o.live === 'true'),
      missing: sinks.reduce((m, s) => m + (LINES - s.seen.size), 0) + (LINES - tailSink.seen.size),
      tasklog: summary(sinks.flatMap((s) => s.samples)),
      tail: summary(tailSink.samples),
      upstreamRequests: upstreamRequests() - before,
      proxyRssMb: vmRssMb(servePid),
      proxyHwmMb: vmHwmMb(servePid),
    });
    tailSinks.delete(phase);
  }
} finally {
  tail.kill('SIGTERM');
  agent.destroy();
}
console.log(JSON.stringify({ lines: LINES, phases }));
