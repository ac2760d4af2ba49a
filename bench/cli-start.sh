#!/usr/bin/env bash
# bench/cli-start: wall time of `tasklog --help` (the CLI starting and exiting), side by side in
# the same run with `node -e 0` (Node starting and exiting, the floor). Median of RUNS runs each,
# interleaved, and the peak RSS of one run.
#
#   bash bench/cli-start.sh [RUNS=30]
#
# Needs a built workspace (`npx -y pnpm@12.4.2 build`).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
RUNS=${1:-30}
CLI=packages/cli/bundle/main.js

wall_ms() { # CMD...: wall milliseconds of one run
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null 2>&1
  end=$(date +%s%N)
  echo $(((end - start) / 1000))
}
T=(); N=()
node "$CLI" --help >/dev/null # warm-up: the page cache
for _ in $(seq "$RUNS"); do
  T+=("$(wall_ms node "$CLI" --help)")
  N+=("$(wall_ms node -e 0)")
done
TMS=$(awk -v u="$(median "${T[@]}")" 'BEGIN { printf "%.1f", u / 1000 }')
NMS=$(awk -v u="$(median "${N[@]}")" 'BEGIN { printf "%.1f", u / 1000 }')
RSS=$( { /usr/bin/time -f "%M" node "$CLI" --help >/dev/null; } 2>&1 | tail -1)
RSS_MB=$(awk -v k="$RSS" 'BEGIN { printf "%.1f", k / 1024 }')
RATIO=$(awk -v t="$TMS" -v n="$NMS" 'BEGIN { printf "%.2f", t / n }')

echo
echo "cli-start: median of $RUNS runs ($(nproc) cores, node $(node -v))"
echo
echo "| command | wall ms (median) |"
echo "|---|---|"
echo "| tasklog --help | $TMS |"
echo "| node -e 0 (baseline) | $NMS |"
echo
echo "tasklog --help peak RSS: $RSS_MB MB; ratio $RATIO"
echo "command: bash bench/cli-start.sh $RUNS"
bench_summary "tasklog --help, wall (ms)" "$TMS" "$NMS" "$RATIO" "<= 150 ms" "$(passfail "$TMS <= 150")"
