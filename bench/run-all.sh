#!/usr/bin/env bash
# bench/run-all: every bench at a size that fits in about 10 minutes on a 2-core machine, then one
# table: path, tasklog, baseline, ratio, target, pass/fail. docs/BENCHMARKS.md holds the
# full-size figures and the command of each.
#
#   bash bench/run-all.sh
#
# Needs a built workspace (`npx -y pnpm@12.4.2 build`); the benches install nginx and awscli from
# Debian when they are missing. Each bench's own output goes to bench-results/<name>.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=bench-results
mkdir -p "$OUT"
export BENCH_SUMMARY="$OUT/summary.tsv"
: >"$BENCH_SUMMARY"

failed=()
run() { # NAME CMD...: one bench, its output kept
  local name=$1; shift
  echo "running $name..." >&2
  if ! "$@" >"$OUT/$name.txt" 2>"$OUT/$name.err"; then
    failed+=("$name")
    echo "  $name failed; see $OUT/$name.err" >&2
  fi
}
run cli-start bash bench/cli-start.sh 30
run fetch-small bash bench/fetch-small.sh 10
run live-tail bash bench/live-tail.sh 100 1,1000
run ship-records bash bench/ship-records.sh 50
run archived-read bash bench/archived-read.sh 256 3
run ship-s3 bash bench/ship-s3.sh 256

echo
echo "| path | tasklog | baseline | ratio | target | pass/fail |"
echo "|---|---|---|---|---|---|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$BENCH_SUMMARY"
for name in "${failed[@]}"; do echo "| $name | (the bench failed) | | | | FAIL |"; done
echo
echo "full outputs: $OUT/*.txt"
