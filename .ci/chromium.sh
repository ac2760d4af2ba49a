#!/usr/bin/env bash
# Installs Debian's Chromium for the viewer's browser tests (test/browser/, driven by
# playwright-core) when /usr/bin/chromium is missing. Best effort, like clients.sh: without root,
# apt-get or network it says so on stderr and exits 0, and the browser tests skip, saying why.
set -uo pipefail

log() { echo "chromium.sh: $*" >&2; }

[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  log "cannot install chromium (needs root and apt-get): the browser tests skip"
  exit 0
fi
log "installing chromium"
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; then
  apt-get update -q >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 ||
    log "install failed: the browser tests skip"
fi
exit 0
