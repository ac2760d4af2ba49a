#!/usr/bin/env bash
# bench/live-tail: latency of a running attempt's live log through `tasklog agent` and
# `tasklog serve` (NDJSON `?follow=true`), for 1 and for 1000 concurrent followers, side by side
# in the same run with `tail -F` on the same file (the baseline). A writer process appends LINES
# lines, one every 10–20 ms, each carrying its write time; every follower's arrival time per line
# gives a latency sample. Also reports how many upstream requests the agent saw and the proxy's
# peak RSS (VmHWM).
#
#   bash bench/live-tail.sh [LINES=200] [FOLLOWERS=1,1000]
#
# Needs a built workspace (`npx -y pnpm@12.4.2 build`) and GNU tail. All traffic is on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-200}
FOLLOWERS=${2:-1,1000}
CLI=packages/cli/bundle/main.js

WORK=$(mktemp -d /tmp/tasklog-bench-live-XXXXXX)
export TASKLOG_HOME="$WORK/home"
# The proxy signs agent tokens with the secret the agent verifies them with.
TASKLOG__AGENT__TOKEN_SECRET=$(node -e 'console.log(require("node:crypto").randomBytes(64).toString("base64"))')
export TASKLOG__AGENT__TOKEN_SECRET
export TASKLOG__STORE__FLUSH_INTERVAL=1

REL="dag_id=bench/run_id=manual__2026-01-01T00:00:00+00:00/task_id=tail/attempt=1.log"
LOG="$TASKLOG_HOME/logs/$REL"
AGENT_PID=; SERVE_PID=
cleanup() {
  [ -d "$(dirname "$LOG")" ] && [ ! -e "$LOG.done" ] && echo '{"state":"success","exitCode":0}' >"$LOG.done"
  [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null || true
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_url() { # NAME: waits until `tasklog NAME` prints its URL
  for _ in $(seq 100); do grep -q 'on http' "$WORK/$1.out" 2>/dev/null && break; sleep 0.1; done
  grep -q 'on http' "$WORK/$1.out" || { echo "$1 did not start:" >&2; cat "$WORK/$1.err" >&2; exit 1; }
}
node "$CLI" agent --port 0 >"$WORK/agent.out" 2>"$WORK/agent.err" &
AGENT_PID=$!
node "$CLI" serve --port 0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVE_PID=$!
wait_url agent
wait_url serve
PROXY_URL=$(grep -o 'http://[^ ]*' "$WORK/serve.out" | head -1)

mkdir -p "$(dirname "$LOG")"
echo "starting bench task" >"$LOG"

echo "following with ${FOLLOWERS} followers, ${LINES} lines each phase..." >&2
RESULT=$(timeout 300 node bench/live-tail.mjs "$PROXY_URL" "$LOG" "$WORK/agent.err" "$SERVE_PID" "$LINES" "$FOLLOWERS")

# Finish the attempt; the agent ships the rest and marks it complete.
echo '{"state":"success","exitCode":0}' >"$LOG.done"
node -e '
  (async () => {
    for (let i = 0; i < 100; i++) {
      const { attempts } = await (await fetch(`${process.argv[1]}/api/v1/attempts?dagId=bench`)).json();
      if (attempts[0] && attempts[0].state !== "running") return;
      await new Promise((r) => setTimeout(r, 100));
    }
    console.error("the attempt did not leave the running state within 10 s");
  })();
' "$PROXY_URL"
UPSTREAM_TOTAL=$(grep -c '"url":"/log/' "$WORK/agent.err" || true)
HWM=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$SERVE_PID/status")

node -e '
  const r = JSON.parse(process.argv[1]);
  const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : "n/a");
  const rows = [];
  for (const p of r.phases) {
    rows.push(`| tail -F (baseline, alongside ${p.followers}) | 1 | ${f(p.tail.p50)} | ${f(p.tail.p99)} |`);
    rows.push(`| tasklog serve, NDJSON follow | ${p.followers} | ${f(p.tasklog.p50)} | ${f(p.tasklog.p99)} |`);
  }
  console.log();
  console.log(`live-tail: ${r.lines} lines per phase, one every 10–20 ms, agent and proxy on loopback (${require("os").cpus().length} cores, node ${process.version}, ${process.argv[2]})`);
  console.log();
  console.log("| run | followers | p50 ms | p99 ms |");
  console.log("|---|---|---|---|");
  for (const row of rows) console.log(row);
  console.log();
  for (const p of r.phases) {
    console.log(`${p.followers} followers: ${p.tasklog.samples} samples, max ${f(p.tasklog.max)} ms, tail max ${f(p.tail.max)} ms, missing ${p.missing}, all live ${p.live}, complete ${p.complete}; upstream requests at the agent ${p.upstreamRequests}; proxy RSS after ${f(p.proxyRssMb)} MB, peak so far ${f(p.proxyHwmMb)} MB`);
  }
  console.log(`upstream requests for the attempt at the agent, whole run: ${process.argv[3]}`);
  console.log(`proxy peak RSS (VmHWM), whole run: ${process.argv[4]} MB`);
  const out = process.env.BENCH_SUMMARY;
  if (out) {
    const pf = (ok) => (ok ? "pass" : "FAIL");
    const rows = [];
    for (const p of r.phases) {
      const name = `live line, ${p.followers} follower${p.followers === 1 ? "" : "s"}, p99 (ms)`;
      if (p.followers === 1) rows.push([name, f(p.tasklog.p99), f(p.tail.p99), (p.tasklog.p99 / p.tail.p99).toFixed(1), "<= 10 ms", pf(p.tasklog.p99 <= 10)]);
      else rows.push([name, f(p.tasklog.p99), f(p.tail.p99), (p.tasklog.p99 / p.tail.p99).toFixed(1), "<= 2x tail -F", pf(p.tasklog.p99 <= 2 * p.tail.p99)]);
    }
    const crowd = r.phases[r.phases.length - 1];
    rows.push([`live, upstream requests at the agent for ${crowd.followers} followers`, String(crowd.upstreamRequests), "", "", "1", pf(crowd.upstreamRequests <= 1)]);
    rows.push(["live, proxy peak RSS (MB)", process.argv[4], "", "", "<= 250", pf(Number(process.argv[4]) <= 250)]);
    require("fs").appendFileSync(out, rows.map((row) => row.join("\t") + "\n").join(""));
  }
  if (r.phases.some((p) => !p.complete)) { console.log("FAIL: some follower missed lines"); process.exit(1); }
' "$RESULT" "$(tail --version | head -1)" "$UPSTREAM_TOTAL" "$HWM"
echo
echo "command: bash bench/live-tail.sh $LINES $FOLLOWERS"
