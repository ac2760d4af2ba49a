#!/usr/bin/env bash
# Installs the outside clients the compatibility tests talk to, when they are missing:
#   /usr/bin/aws           Debian's awscli (S3 and CloudWatch Logs)
#   python3-elasticsearch  Debian's Elasticsearch client, for Airflow's own query
#   gcloud                 the google-cloud-cli (Cloud Storage) is on the image; not installed here
# Best effort, like postgres.sh: without root, apt-get or network it says so on stderr and exits 0,
# and the tests that need a missing client skip, saying which one.
set -uo pipefail

log() { echo "clients.sh: $*" >&2; }

missing=()
[ -x /usr/bin/aws ] || missing+=(awscli)
/usr/bin/python3 -c 'import elasticsearch' 2>/dev/null || missing+=(python3-elasticsearch)
# gcloud comes from Google's own apt repository, which this machine does not reach: only said.
command -v gcloud >/dev/null || log "gcloud (google-cloud-cli) missing: test/backends/gcs/gcloud-cli.test.ts and the gcloud parts of test/airflow/gcs-airflow-compat.test.ts skip"
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  log "cannot install ${missing[*]} (needs root and apt-get)"
  exit 0
fi
log "installing ${missing[*]}"
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2; then
  apt-get update -q >&2 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 || log "install failed"
fi
exit 0
