import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Locator } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServe } from '../support/cli.js';
import { useTasklogHome } from '../support/tasklog-home.js';
import { HAVE_CHROMIUM, inChromium, useChromium } from './support/chromium.js';
import {
  type Archived,
  archivePath,
  catalogShipped,
  logPageUrl,
  NUMBERED_LINE_BYTES,
  numberedLine,
  writeNumberedLog,
} from './support/logs.js';

/** The computed colour of an element (evaluated in the page, where the DOM is). */
function colorOf(locator: Locator): Promise<string> {
  // The test project has no DOM types: the page's global is named through globalThis.
  type Styles = { getComputedStyle(el: unknown): { color: string } };
  return locator.evaluate((el) => (globalThis as unknown as Styles).getComputedStyle(el).color);
}

const GIB_LINES = (1024 * 1024 * 1024) / NUMBERED_LINE_BYTES;
const BIG: Archived = {
  dagId: 'big_dag',
  runId: 'manual__2026-01-01T00:00:00+00:00',
  taskId: 'gib',
};
const STYLED: Archived = {
  dagId: 'styled_dag',
  runId: 'scheduled__2026-01-02T00:00:00+00:00',
  taskId: 'ansi',
};

const STYLED_LOG = [
  '[2026-01-01T00:00:00.123+0000] {taskinstance.py:1} INFO - starting',
  '\x1b[31mred words\x1b[0m and \x1b[1;38;5;208mbold orange\x1b[0m and \x1b[38;2;10;200;30mtruecolor\x1b[0m',
  'a log line with <script>window.__tasklogInjected = true</script><img src=x onerror="window.__tasklogInjected=true"> in it',
  '[2026-01-01T00:00:01.000+0000] {taskinstance.py:2} ERROR - the task failed',
  'Traceback (most recent call last):',
  '  File "dag.py", line 3, in run',
  'ValueError: boom',
  '::group::Pre task execution logs',
  'inside the group',
  '::endgroup::',
  'after the group',
].join('\n');

describe.skipIf(!HAVE_CHROMIUM)(
  inChromium('the log viewer reads archived logs in Chromium'),
  () => {
    const home = useTasklogHome('viewer-read', { TASKLOG__LOGGING__LEVEL: 'warn' });
    const browser = useChromium();
    let serve: Awaited<ReturnType<typeof startServe>>;

    beforeAll(async () => {
      const big = archivePath(home.dir, BIG);
      const size = await writeNumberedLog(big, GIB_LINES);
      const styled = archivePath(home.dir, STYLED);
      await mkdir(dirname(styled), { recursive: true });
      await writeFile(styled, `${STYLED_LOG}\n`);
      await catalogShipped(home.dir, [
        { ...BIG, size },
        { ...STYLED, size: Buffer.byteLength(`${STYLED_LOG}\n`) },
      ]);
      serve = await startServe([], home.env);
    }, 180_000);

    afterAll(async () => {
      await serve?.stop();
    });

    it('opens a 1 GiB log at its first screen, and End reaches its last line reading only what it shows', async () => {
      const { page } = await browser.open();
      // The viewer's own files first (as a reader who opened any page before): what is timed is
      // the log, not Chromium starting its first renderer.
      await page.goto(serve.url);
      await page.getByRole('link', { name: 'big_dag' }).waitFor();
      // From the navigation's start to the first lines on screen, by the page's clock (a mark the
      // viewer sets; Chromium's performance API). Reported, not asserted: tests do not judge
      // wall-clock time (bench/viewer.mjs measures it, docs/BENCHMARKS.md has the figures).
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        await page.goto(logPageUrl(serve.url, BIG));
        await page.getByText(numberedLine(1), { exact: true }).waitFor();
        times.push(
          (await page.evaluate(
            "performance.getEntriesByName('tasklog:first-lines')[0].startTime",
          )) as number,
        );
      }
      console.log(`1 GiB log: first screen after ${times.map(Math.round).join(', ')} ms`);
      expect(times.every((t) => t > 0)).toBe(true);

      await page.keyboard.press('End');
      await page.getByText(numberedLine(GIB_LINES), { exact: true }).waitFor({ timeout: 5000 });
      // Only the bytes around the start and the end were read, not the log.
      const read = (await page.evaluate(
        "performance.getEntriesByType('resource').filter((e) => e.name.includes('/log'))" +
          '.reduce((sum, e) => sum + e.transferSize, 0)',
      )) as number;
      expect(read).toBeGreaterThan(0);
      expect(read).toBeLessThan(2 * 1024 * 1024);
    });

    it('jumps to a percentage of the log by reading only the bytes there', async () => {
      const { page } = await browser.open();
      await page.goto(logPageUrl(serve.url, BIG));
      await page.getByText(numberedLine(1), { exact: true }).waitFor();
      const goto = page.getByLabel('Go to a percentage or a byte offset');
      await goto.fill('50%');
      await goto.press('Enter');
      await page.getByText(numberedLine(GIB_LINES / 2 + 1), { exact: true }).waitFor();
    });

    it('opens a permalink scrolled to its line, and a gutter click makes one', async () => {
      const { page } = await browser.open();
      const n = 12_345_678;
      const offset = (n - 1) * NUMBERED_LINE_BYTES + 10;
      await page.goto(`${logPageUrl(serve.url, BIG)}#o=${offset}`);
      const target = page.locator('.line.target');
      await expect.poll(() => target.textContent()).toContain(numberedLine(n));
      expect(await target.isVisible()).toBe(true);

      const next = page.locator('.line', { hasText: numberedLine(n + 3) });
      await next.locator('.gutter').click();
      expect(new URL(page.url()).hash).toBe(`#o=${(n + 2) * NUMBERED_LINE_BYTES}`);
    });

    it('renders ANSI colours as styles and a <script> in a line as text', async () => {
      const { page } = await browser.open();
      await page.goto(logPageUrl(serve.url, STYLED));
      const red = page.getByText('red words', { exact: true });
      await red.waitFor();
      const color = await colorOf(red);
      const [r, g, b] = (color.match(/\d+/g) ?? []).map(Number) as [number, number, number];
      expect(r).toBeGreaterThan(150);
      expect(g).toBeLessThan(100);
      expect(b).toBeLessThan(100);
      expect(await colorOf(page.getByText('truecolor'))).toBe('rgb(10, 200, 30)');
      // No raw escape reaches the page.
      expect(await page.locator('.log-lines').textContent()).not.toContain('\x1b');

      const injected = page.locator('.line', { hasText: 'window.__tasklogInjected' });
      expect(await injected.textContent()).toContain(
        '<script>window.__tasklogInjected = true</script>',
      );
      expect(await page.locator('.log-lines script, .log-lines img').count()).toBe(0);
      expect(await page.evaluate('window.__tasklogInjected === undefined')).toBe(true);
    });

    it('highlights levels, marks tracebacks and folds ::group:: sections', async () => {
      const { page } = await browser.open();
      await page.goto(logPageUrl(serve.url, STYLED));
      await page.locator('.line.lvl-error', { hasText: 'the task failed' }).waitFor();
      expect(await page.locator('.line.tb').count()).toBe(3);
      const header = page.getByRole('button', { name: /Pre task execution logs/ });
      expect(await page.getByText('inside the group').count()).toBe(0);
      await header.click();
      await page.getByText('inside the group').waitFor();
      expect(await page.getByText('::endgroup::').count()).toBe(0);
    });

    it('finds a line near the end of the 1 GiB log and jumps to it', async () => {
      const { page } = await browser.open();
      await page.goto(logPageUrl(serve.url, BIG));
      await page.getByText(numberedLine(1), { exact: true }).waitFor();
      const wanted = numberedLine(GIB_LINES - 1000).slice(0, 14);
      await page.keyboard.press('/');
      await page.keyboard.type(wanted);
      await page.keyboard.press('Enter');
      const result = page.locator('.search-results li', { hasText: wanted });
      const further = page.getByRole('button', { name: 'Search further' });
      // The server scans within a time budget: go on from where it stopped until the line shows.
      for (let i = 0; i < 30 && (await result.count()) === 0; i++) {
        await Promise.race([
          result.waitFor({ timeout: 60_000 }),
          further.waitFor({ timeout: 60_000 }).then(() => further.click()),
        ]);
      }
      await result.click();
      const target = page.locator('.line.target');
      await expect.poll(() => target.textContent()).toContain(numberedLine(GIB_LINES - 1000));
    }, 300_000);

    it('browses DAGs → runs → tasks to a log, with a filter the server applies', async () => {
      const { page } = await browser.open();
      await page.goto(serve.url);
      await page.getByRole('link', { name: 'big_dag' }).waitFor();
      await page.getByLabel('Filter').fill('styled');
      await expect.poll(() => page.getByRole('link', { name: 'big_dag' }).count()).toBe(0);
      await page.getByRole('link', { name: 'styled_dag' }).click();
      await page.getByRole('link', { name: STYLED.runId }).click();
      const task = page.getByRole('row', { name: /ansi/ });
      expect(await task.textContent()).toContain('shipped');
      await task.getByRole('link', { name: 'ansi' }).click();
      await page.getByText('red words', { exact: true }).waitFor();
      expect(new URL(page.url()).pathname).toBe(new URL(logPageUrl(serve.url, STYLED)).pathname);
      await page.goBack();
      await page.getByRole('row', { name: /ansi/ }).waitFor();
    });
  },
);
