#!/usr/bin/env bash
# bench/archived-read: download a 1 GiB archived log through `tasklog serve` with curl, side by
# side with the same file served by nginx (sendfile) and by a minimal Node server
# (bench/minimal-server.mjs: createReadStream piped to the response), in the same run. Reports
# throughput, each server's peak RSS (VmHWM) and the ratios.
#
#   bash bench/archived-read.sh [SIZE_MIB=1024] [RUNS=5]
#
# Needs: a built workspace (`npx -y pnpm@12.4.2 build`), curl; installs Debian's nginx if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
SIZE_MIB=${1:-1024}
RUNS=${2:-5}

if ! command -v nginx >/dev/null; then
  echo "installing nginx (Debian package)..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light || \
   DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

bench_workdir read
# nginx runs as a daemon: its pid is in its pid file.
trap '[ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; bench_cleanup' EXIT
export TASKLOG_HOME="$WORK/home"

bench_log read "$TASKLOG_HOME/logs"
echo "generating a ${SIZE_MIB} MiB log..." >&2
node bench/repeated-log.mjs "$SIZE_MIB" "$LOG"
EXPECTED=$(sha256sum "$LOG" | cut -d" " -f1)

node packages/cli/bundle/main.js ship "$LOG" >&2
ARCHIVED="$TASKLOG_HOME/archive/$REL"
chmod -R a+rX "$WORK" # nginx workers run as an unprivileged user

# tasklog serve on a free port
node packages/cli/bundle/main.js serve --port 0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVE_PID=$!
PIDS+=("$SERVE_PID")
for _ in $(seq 100); do grep -q 'on http' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
TASKLOG_URL=$(grep -o 'http://[^ ]*' "$WORK/serve.out" | head -1)
LOG_URL="$TASKLOG_URL/api/v1/dags/bench/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00/tasks/read/attempts/1/log"

# the minimal Node server streaming the same file
node bench/minimal-server.mjs "$ARCHIVED" >"$WORK/minimal.out" &
MINIMAL_PID=$!
PIDS+=("$MINIMAL_PID")
for _ in $(seq 100); do [ -s "$WORK/minimal.out" ] && break; sleep 0.1; done
MINIMAL_URL=$(head -1 "$WORK/minimal.out")

# nginx on loopback serving the same archive folder
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  default_type text/plain;
  client_body_temp_path $WORK/nginx-tmp;
  proxy_temp_path $WORK/nginx-tmp;
  fastcgi_temp_path $WORK/nginx-tmp;
  uwsgi_temp_path $WORK/nginx-tmp;
  scgi_temp_path $WORK/nginx-tmp;
  server { listen 127.0.0.1:$PORT; root $TASKLOG_HOME/archive; }
}
CONF
mkdir -p "$WORK/nginx-tmp"
"$NGINX" -c "$WORK/nginx.conf"
NGINX_URL="http://127.0.0.1:$PORT/$(node -e 'console.log(process.argv[1].split("/").map(encodeURIComponent).join("/"))' "$REL")"
sleep 0.3
NGINX_WORKER=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)

hwm_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
verify() { # url: the download must be the archived log, byte for byte (not timed)
  [ "$(curl -sS "$1" | sha256sum | cut -d" " -f1)" = "$EXPECTED" ] || { echo "checksum mismatch for $1" >&2; exit 1; }
}
measure() { # url -> MiB/s, body discarded so the disk does not take part
  local out
  out=$(curl -sS -o /dev/null -w '%{size_download} %{time_total}' "$1")
  [ "${out% *}" = "$((SIZE_MIB * 1048576))" ] || { echo "short download from $1: ${out% *} bytes" >&2; exit 1; }
  awk -v s="${out% *}" -v t="${out#* }" 'BEGIN { printf "%.1f", s / t / 1048576 }'
}

verify "$NGINX_URL"
verify "$MINIMAL_URL"
verify "$LOG_URL"
measure "$NGINX_URL" >/dev/null # warm-up, untimed: page cache and JIT
measure "$MINIMAL_URL" >/dev/null
measure "$LOG_URL" >/dev/null
T_SPEEDS=(); N_SPEEDS=(); M_SPEEDS=()
for i in $(seq "$RUNS"); do
  N_SPEEDS+=("$(measure "$NGINX_URL")")
  M_SPEEDS+=("$(measure "$MINIMAL_URL")")
  T_SPEEDS+=("$(measure "$LOG_URL")")
done
T=$(median "${T_SPEEDS[@]}"); N=$(median "${N_SPEEDS[@]}"); M=$(median "${M_SPEEDS[@]}")
T_RSS=$(hwm_mb "$SERVE_PID"); N_RSS=$(hwm_mb "$NGINX_WORKER"); M_RSS=$(hwm_mb "$MINIMAL_PID")

echo
echo "archived-read: ${SIZE_MIB} MiB log, curl over loopback, median of $RUNS runs ($(nproc) cores, node $(node -v), $("$NGINX" -v 2>&1 | sed 's/.*: //'))"
echo
echo "| server | throughput (MiB/s) | peak RSS (MB) |"
echo "|---|---|---|"
echo "| tasklog serve | $T | $T_RSS |"
echo "| nginx (baseline, sendfile) | $N | $N_RSS |"
echo "| minimal Node server (baseline) | $M | $M_RSS |"
echo
R_N=$(awk -v t="$T" -v n="$N" 'BEGIN { printf "%.2f", t / n }')
R_M=$(awk -v t="$T" -v m="$M" 'BEGIN { printf "%.2f", t / m }')
echo "throughput ratio tasklog/nginx: $R_N; tasklog/minimal Node server: $R_M"
echo "runs: tasklog ${T_SPEEDS[*]} MiB/s; nginx ${N_SPEEDS[*]} MiB/s; minimal Node ${M_SPEEDS[*]} MiB/s"
echo "command: bash bench/archived-read.sh $SIZE_MIB $RUNS"
bench_summary "archived ${SIZE_MIB} MiB via serve vs nginx (MiB/s)" "$T" "$N" "$R_N" ">= 0.8" "$(passfail "$R_N >= 0.8")"
bench_summary "archived ${SIZE_MIB} MiB via serve vs minimal Node (MiB/s)" "$T" "$M" "$R_M" ">= 0.95" "$(passfail "$R_M >= 0.95")"
bench_summary "archived read, serve peak RSS (MB)" "$T_RSS" "$N_RSS" "" "<= 100" "$(passfail "$T_RSS <= 100")"
awk -v r="$T_RSS" 'BEGIN { if (r > 150) { print "FAIL: tasklog peak RSS above 150 MB"; exit 1 } else print "tasklog peak RSS under 150 MB: ok" }'
