#!/usr/bin/env bash
# bench/ship-records: ship a 200 MB log of mixed line lengths to each record-store emulator
# (CloudWatch Logs, Elasticsearch, Cloud Logging), each running in its own process so that its
# cost is not counted, and report lines/s, MB/s and tasklog's CPU seconds per GB, side by side
# in the same run with a baseline that only reads the file and splits it into lines.
#
#   bash bench/ship-records.sh [SIZE_MB=200]
#
# Needs a built workspace (`npx -y pnpm@12.4.2 build`).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
SIZE_MB=${1:-200}
bench_workdir records

bench_log records "$WORK/logs"
echo "generating a ${SIZE_MB} MB log of mixed line lengths..." >&2
node -e '
  const fs = require("node:fs");
  const target = Number(process.argv[1]) * 1e6;
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const fd = fs.openSync(process.argv[2], "w");
  let size = 0, i = 0, batch = [];
  while (size < target) {
    const r = rand();
    // Most lines short, some medium, a few very long (stack traces, JSON dumps).
    const n = r < 0.7 ? 40 + Math.floor(rand() * 80) : r < 0.98 ? 200 + Math.floor(rand() * 800) : 5000 + Math.floor(rand() * 60000);
    const line = `[2026-01-01T00:00:${String(i % 60).padStart(2, "0")}] INFO ${i++} ${"héllo wörld ".repeat(Math.ceil(n / 13)).slice(0, n)}\n`;
    batch.push(line); size += Buffer.byteLength(line);
    if (batch.length >= 1000) { fs.writeSync(fd, batch.join("")); batch = []; }
  }
  fs.writeSync(fd, batch.join(""));
  fs.closeSync(fd);
' "$SIZE_MB" "$LOG"
read -r LINES BYTES _ < <(node bench/split-lines.mjs "$LOG")

# start NAME CMD... : runs an emulator in the background and waits for its first output line
# start NAME [OPTIONS...]: `tasklog-emulator NAME --port 0`; its JSON line of endpoints in $WORK/NAME.out
start() {
  local name=$1; shift
  bench/node_modules/.bin/tasklog-emulator "$name" --port 0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  PIDS+=("$!")
  for _ in $(seq 200); do [ -s "$WORK/$name.out" ] && break; sleep 0.1; done
}
# endpoint NAME FIELD: a field of the emulator's JSON line
endpoint() { node -pe "JSON.parse(require('fs').readFileSync(0, 'utf8').split('\\n')[0]).$2" <"$WORK/$1.out"; }
# measure LABEL CMD... : "wall user+sys peakRSS_MB" of CMD (GNU time)
measure() {
  local label=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time.$label" "$@" >"$WORK/out.$label" 2>"$WORK/err.$label" || {
    echo "$label failed:" >&2; tail -20 "$WORK/err.$label" >&2; exit 1; }
  awk '{ printf "%s %.2f %.1f\n", $1, $2 + $3, $4 / 1024 }' "$WORK/time.$label"
}
row() { # label wall cpu rss
  awk -v l="$1" -v w="$2" -v c="$3" -v r="$4" -v n="$LINES" -v b="$BYTES" 'BEGIN {
    printf "| %s | %.0f | %.1f | %.1f | %.1f |\n", l, n / w, b / w / 1e6, c / (b / 1e9), r }'
}

read -r B_WALL B_CPU B_RSS < <(measure baseline node bench/split-lines.mjs "$LOG")

# ship NAME VAR=VALUE...: measures `tasklog ship` of the log with its own home (catalog, journals)
ship() {
  local name=$1; shift
  measure "$name" env TASKLOG_HOME="$WORK/home-$name" TASKLOG__CORE__BASE_LOG_FOLDER="$WORK/logs" \
    "$@" node packages/cli/bundle/main.js ship "$LOG"
}

start cloudwatch
CW_URL=$(endpoint cloudwatch url)
read -r CW_WALL CW_CPU CW_RSS < <(ship cloudwatch \
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
  TASKLOG__STORE__URL=cloudwatch://arn:aws:logs:us-east-1:123456789012:log-group:bench \
  TASKLOG__CLOUDWATCH__ENDPOINT="$CW_URL")

start elasticsearch
ES_URL=$(endpoint elasticsearch url)
read -r ES_WALL ES_CPU ES_RSS < <(ship elasticsearch \
  TASKLOG__STORE__URL="elasticsearch+${ES_URL}/tasklog-bench")

start cloud-logging --rest-port 0
GL_URL=$(endpoint cloud-logging url)
read -r GL_WALL GL_CPU GL_RSS < <(ship cloud-logging \
  TASKLOG__STORE__URL=cloud-logging://tasklog-bench \
  TASKLOG__CLOUD_LOGGING__PROJECT_ID=bench \
  TASKLOG__CLOUD_LOGGING__API_ENDPOINT="http://$GL_URL")

echo
echo "ship-records: $(awk -v b="$BYTES" 'BEGIN { printf "%.0f", b / 1e6 }') MB, $LINES lines, to each emulator on loopback ($(nproc) cores, node $(node -v)); emulator CPU not counted"
echo
echo "| run | lines/s | MB/s | CPU s per GB | peak RSS (MB) |"
echo "|---|---|---|---|---|"
row "baseline: read + split into lines" "$B_WALL" "$B_CPU" "$B_RSS"
row "tasklog ship → CloudWatch Logs" "$CW_WALL" "$CW_CPU" "$CW_RSS"
row "tasklog ship → Elasticsearch" "$ES_WALL" "$ES_CPU" "$ES_RSS"
row "tasklog ship → Cloud Logging (gRPC)" "$GL_WALL" "$GL_CPU" "$GL_RSS"
echo
echo "(tasklog ship = hash the file, split into records, batch, send, finish with a verified end-of-log record, record in the catalog)"
echo "command: bash bench/ship-records.sh $SIZE_MB"
cpu_gb() { awk -v c="$1" -v b="$BYTES" 'BEGIN { printf "%.1f", c / (b / 1e9) }'; }
B_GB=$(cpu_gb "$B_CPU")
for row in "CloudWatch Logs:$CW_CPU:$CW_RSS" "Elasticsearch:$ES_CPU:$ES_RSS" "Cloud Logging:$GL_CPU:$GL_RSS"; do
  IFS=: read -r name cpu rss <<<"$row"
  gb=$(cpu_gb "$cpu")
  bench_summary "ship records to $name (CPU s/GB)" "$gb" "$B_GB" "$(awk -v a="$gb" -v b="$B_GB" 'BEGIN { printf "%.1f", a / b }')" "<= 10" "$(passfail "$gb <= 10")"
  bench_summary "ship records to $name, peak RSS (MB)" "$rss" "$B_RSS" "" "<= 150" "$(passfail "$rss <= 150")"
done
