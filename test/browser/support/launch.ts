import { existsSync } from 'node:fs';

/** Debian's Chromium (`.ci/chromium.sh` installs it); without it the browser tests skip. */
export const CHROMIUM = '/usr/bin/chromium';
export const HAVE_CHROMIUM = existsSync(CHROMIUM);
export const NO_CHROMIUM_REASON = `${CHROMIUM} is missing: run .ci/chromium.sh (Debian's chromium)`;

/** Headless, and nothing that reaches beyond this machine (updates, sync, QUIC probes). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
