# What the bench scripts share; each sources it after `cd` to the repository root:
#   . bench/common.sh

# bench_workdir NAME: WORK, a new folder /tmp/tasklog-bench-NAME-XXXXXX, removed on exit after
# the background processes whose ids the script adds to PIDS are killed.
bench_workdir() {
  WORK=$(mktemp -d "/tmp/tasklog-bench-$1-XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}

# bench_log TASK FOLDER: REL, the path of try 1 of task TASK in the bench's dag run as Airflow
# names it, and LOG, that file below the log folder FOLDER (whose folders it creates).
bench_log() {
  REL="dag_id=bench/run_id=manual__2026-01-01T00:00:00+00:00/task_id=$1/attempt=1.log"
  LOG="$2/$REL"
  mkdir -p "$(dirname "$LOG")"
}

# bench_summary PATH TASKLOG BASELINE RATIO TARGET PASS: one row of bench/run-all.sh's table,
# appended to $BENCH_SUMMARY when run-all set it (a bench run alone prints only its own table).
bench_summary() {
  [ -n "${BENCH_SUMMARY:-}" ] && printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$BENCH_SUMMARY"
  return 0
}

# passfail EXPR: "pass" when the awk expression holds, else "FAIL".
passfail() { awk "BEGIN { print ($1) ? \"pass\" : \"FAIL\" }"; }

# median VALUES...: the middle value (the upper one of two).
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# bench_s3rver: s3rver (through tasklog-emulator) on loopback with the bucket `bench`, awscli as
# AWS (Debian's, installed when missing; a pip-installed v1 may shadow it on PATH), and the
# environment that points both tasklog (store s3://bench/logs, home $WORK/home) and awscli at it.
# Call after bench_workdir.
bench_s3rver() {
  AWS=/usr/bin/aws
  if [ ! -x "$AWS" ]; then
    echo "installing awscli (Debian package)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli) >/dev/null
  fi
  bench/node_modules/.bin/tasklog-emulator s3 --port 0 --bucket bench >"$WORK/s3rver.json" &
  PIDS+=("$!")
  for _ in $(seq 100); do [ -s "$WORK/s3rver.json" ] && break; sleep 0.1; done
  ENDPOINT=$(node -pe "JSON.parse(require('fs').readFileSync(0, 'utf8')).url" <"$WORK/s3rver.json")
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export TASKLOG_HOME="$WORK/home"
  export TASKLOG__STORE__URL="s3://bench/logs"
  export TASKLOG__S3__ENDPOINT="$ENDPOINT"
  export TASKLOG__S3__FORCE_PATH_STYLE=true
}
