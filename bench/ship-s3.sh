#!/usr/bin/env bash
# bench/ship-s3: ship a 1 GiB log to s3rver with `tasklog ship` and download it again with
# `tasklog fetch`, side by side in the same run with Debian's awscli (`aws s3 cp` up and down,
# same s3rver, same file). Reports throughput, peak RSS and the ratios.
#
#   bash bench/ship-s3.sh [SIZE_MIB=1024]
#
# Needs a built workspace (`npx -y pnpm@12.4.2 build`); installs Debian's awscli if missing.
# (A pip-installed aws v1 may shadow Debian's on PATH: this script calls /usr/bin/aws.)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
SIZE_MIB=${1:-1024}
bench_workdir s3
bench_s3rver

bench_log ship "$TASKLOG_HOME/logs"
echo "generating a ${SIZE_MIB} MiB log..." >&2
node bench/repeated-log.mjs "$SIZE_MIB" "$LOG"
EXPECTED=$(sha256sum "$LOG" | cut -d" " -f1)
BYTES=$((SIZE_MIB * 1048576))

# run LABEL CMD... : wall seconds and peak RSS (MB) of CMD, from GNU time
run() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time.$label" "$@" >"$WORK/out.$label" 2>"$WORK/err.$label" || {
    echo "$label failed:" >&2; cat "$WORK/err.$label" >&2; exit 1; }
  read -r secs kb <"$WORK/time.$label"
  echo "$secs $(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')"
}
check() { [ "$(sha256sum "$1" | cut -d" " -f1)" = "$EXPECTED" ] || { echo "checksum mismatch: $1" >&2; exit 1; }; }

read -r T_UP_S T_UP_RSS < <(run tasklog-up node packages/cli/bundle/main.js ship "$LOG")
read -r T_DOWN_S T_DOWN_RSS < <(run tasklog-down node packages/cli/bundle/main.js fetch bench manual__2026-01-01T00:00:00+00:00 ship --output "$WORK/tasklog.out")
check "$WORK/tasklog.out"; rm -f "$WORK/tasklog.out"

# awscli v2 sends CRC trailers with aws-chunked bodies by default in newer releases; s3rver
# would store the framing. Debian's 2.9 predates that default; the variable is set anyway.
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required
read -r A_UP_S A_UP_RSS < <(run aws-up "$AWS" --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "$LOG" "s3://bench/awscli/attempt=1.log")
read -r A_DOWN_S A_DOWN_RSS < <(run aws-down "$AWS" --endpoint-url "$ENDPOINT" s3 cp --only-show-errors "s3://bench/awscli/attempt=1.log" "$WORK/aws.out")
check "$WORK/aws.out"; rm -f "$WORK/aws.out"

mibs() { awk -v b="$BYTES" -v s="$1" 'BEGIN { printf "%.1f", b / s / 1048576 }'; }
echo
echo "ship-s3: ${SIZE_MIB} MiB log to s3rver 3.7.1 on loopback ($(nproc) cores, node $(node -v), $("$AWS" --version | cut -d" " -f1))"
echo
echo "| direction | tasklog MiB/s | awscli MiB/s | ratio | tasklog peak RSS (MB) | awscli peak RSS (MB) |"
echo "|---|---|---|---|---|---|"
echo "| up (ship / s3 cp) | $(mibs "$T_UP_S") | $(mibs "$A_UP_S") | $(awk -v a="$A_UP_S" -v t="$T_UP_S" 'BEGIN { printf "%.2f", a / t }') | $T_UP_RSS | $A_UP_RSS |"
echo "| down (fetch / s3 cp) | $(mibs "$T_DOWN_S") | $(mibs "$A_DOWN_S") | $(awk -v a="$A_DOWN_S" -v t="$T_DOWN_S" 'BEGIN { printf "%.2f", a / t }') | $T_DOWN_RSS | $A_DOWN_RSS |"
echo
echo "(ratio = tasklog throughput / awscli throughput; tasklog ship includes hashing the file and verifying the upload)"
R_UP=$(awk -v a="$A_UP_S" -v t="$T_UP_S" 'BEGIN { printf "%.2f", a / t }')
R_DOWN=$(awk -v a="$A_DOWN_S" -v t="$T_DOWN_S" 'BEGIN { printf "%.2f", a / t }')
echo "command: bash bench/ship-s3.sh $SIZE_MIB"
bench_summary "ship ${SIZE_MIB} MiB to S3 (s3rver) vs aws s3 cp (MiB/s)" "$(mibs "$T_UP_S")" "$(mibs "$A_UP_S")" "$R_UP" ">= 1.2" "$(passfail "$R_UP >= 1.2")"
bench_summary "fetch ${SIZE_MIB} MiB from S3 (s3rver) vs aws s3 cp (MiB/s)" "$(mibs "$T_DOWN_S")" "$(mibs "$A_DOWN_S")" "$R_DOWN" ">= 1.2" "$(passfail "$R_DOWN >= 1.2")"
bench_summary "ship to S3, tasklog peak RSS (MB)" "$T_UP_RSS" "$A_UP_RSS" "" "<= 150" "$(passfail "$T_UP_RSS <= 150")"
awk -v r="$T_UP_RSS" 'BEGIN { if (r > 200) { print "FAIL: tasklog ship peak RSS above 200 MB"; exit 1 } else print "tasklog ship peak RSS under 200 MB: ok" }'
