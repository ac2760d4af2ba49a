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
