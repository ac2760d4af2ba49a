#!/usr/bin/env bash
# bench/fetch-small: whole-process wall time of `tasklog fetch` of a 1 MB archived log from S3
# (s3rver), side by side in the same run with `aws s3 cp` of the same object to stdout. Median of
# RUNS runs each, interleaved; both processes start cold (no server of their own).
#
#   bash bench/fetch-small.sh [RUNS=10]
#
# Needs a built workspace (`npx -y pnpm@12.4.2 build`); installs Debian's awscli if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
RUNS=${1:-10}
bench_workdir fetch-small
bench_s3rver

bench_log fetch "$TASKLOG_HOME/logs"
node bench/repeated-log.mjs 1 "$LOG"
EXPECTED=$(sha256sum "$LOG" | cut -d" " -f1)
node packages/cli/bundle/main.js ship "$LOG" >/dev/null
OBJECT="s3://bench/logs/$REL"
FETCH=(node packages/cli/bundle/main.js fetch bench manual__2026-01-01T00:00:00+00:00 fetch --try 1)
COPY=("$AWS" --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "$OBJECT" -)
[ "$("${FETCH[@]}" | sha256sum | cut -d" " -f1)" = "$EXPECTED" ] || { echo "tasklog fetch: checksum mismatch" >&2; exit 1; }
[ "$("${COPY[@]}" | sha256sum | cut -d" " -f1)" = "$EXPECTED" ] || { echo "aws s3 cp: checksum mismatch" >&2; exit 1; }

wall_ms() { # CMD...: wall milliseconds of one run, output discarded
  local start end
  start=$(date +%s%N)
  "$@" >/dev/null
  end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
T=(); A=()
for _ in $(seq "$RUNS"); do
  T+=("$(wall_ms "${FETCH[@]}")")
  A+=("$(wall_ms "${COPY[@]}")")
done
TMS=$(median "${T[@]}"); AMS=$(median "${A[@]}")
RATIO=$(awk -v t="$TMS" -v a="$AMS" 'BEGIN { printf "%.2f", t / a }')

echo
echo "fetch-small: a 1 MiB log from s3rver to stdout, whole process, median of $RUNS runs ($(nproc) cores, node $(node -v), $("$AWS" --version | cut -d" " -f1))"
echo
echo "| command | wall ms (median) |"
echo "|---|---|"
echo "| tasklog fetch --try 1 | $TMS |"
echo "| aws s3 cp (baseline) | $AMS |"
echo
echo "ratio tasklog/awscli: $RATIO; runs: tasklog ${T[*]} ms; awscli ${A[*]} ms"
echo "command: bash bench/fetch-small.sh $RUNS"
bench_summary "fetch a 1 MiB log from S3, whole process (ms)" "$TMS" "$AMS" "$RATIO" "<= 0.5" "$(passfail "$RATIO <= 0.5")"
