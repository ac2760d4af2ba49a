import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { CHROMIUM, CHROMIUM_ARGS, HAVE_CHROMIUM, NO_CHROMIUM_REASON } from './launch.js';

export { HAVE_CHROMIUM };

// Chromium's own line for an answer outside 2xx; a test that expects one (a 401 before the token
// prompt, a 403) names its status, and every other console error fails the test.
const FAILED_LOAD = /^Failed to load resource: the server responded with a status of (\d+)/;

export interface BrowserPage {
  page: Page;
  /** Console errors and page errors seen so far. */
  errors: string[];
  /** HTTP statuses the page may meet without that counting as an error (401 before signing in). */
  allowStatuses: Set<number>;
}

/**
 * A Chromium for the block (a fresh profile in a temporary folder), and a new page per test
 * that collects every console error and uncaught page error; `afterEach` fails the test when
 * there was any.
 */
export function useChromium(): { open(): Promise<BrowserPage>; context(): BrowserContext } {
  let context: BrowserContext | undefined;
  let profile: string | undefined;
  let current: BrowserPage[] = [];
  beforeAll(async () => {
    profile = await mkdtemp(join(tmpdir(), 'tasklog-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
      viewport: { width: 1280, height: 800 },
    });
    // A persistent context opens with one blank page: closed, each test opens its own.
    for (const p of context.pages()) await p.close();
  });
  afterEach(async () => {
    const pages = current;
    current = [];
    for (const p of pages) await p.page.close().catch(() => undefined);
    const errors = pages.flatMap((p) => p.errors);
    if (errors.length > 0) throw new Error(`browser errors:\n${errors.join('\n')}`);
  });
  afterAll(async () => {
    await context?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });
  return {
    context: () => context!,
    async open() {
      const page = await context!.newPage();
      const bp: BrowserPage = { page, errors: [], allowStatuses: new Set() };
      page.on('console', (msg) => {
        if (msg.type() !== 'error') return;
        const status = FAILED_LOAD.exec(msg.text());
        if (status && bp.allowStatuses.has(Number(status[1]))) return;
        bp.errors.push(`console: ${msg.text()} (${msg.location().url})`);
      });
      page.on('pageerror', (err) => bp.errors.push(`page error: ${err.message}`));
      current.push(bp);
      return bp;
    },
  };
}

/** A suite's title that says, when Chromium is missing, why it skips. */
export function inChromium(title: string): string {
  return HAVE_CHROMIUM ? title : `${title} (skipped: ${NO_CHROMIUM_REASON})`;
}
