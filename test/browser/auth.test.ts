import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startServe } from '../support/cli.js';
import { useTasklogHome } from '../support/tasklog-home.js';
import { HAVE_CHROMIUM, inChromium, useChromium } from './support/chromium.js';
import { archivePath, catalogShipped, logPageUrl } from './support/logs.js';

const SECRET_LOG = { dagId: 'payroll', runId: 'manual__2026-01-01T00:00:00+00:00', taskId: 'pay' };
const OPEN_LOG = {
  dagId: 'public_etl',
  runId: 'manual__2026-01-01T00:00:00+00:00',
  taskId: 'load',
};

describe.skipIf(!HAVE_CHROMIUM)(inChromium('the log viewer with bearer tokens'), () => {
  const home = useTasklogHome('viewer-auth', {
    TASKLOG__AUTH__MODE: 'tokens',
    TASKLOG__LOGGING__LEVEL: 'warn',
  });
  const browser = useChromium();
  let serve: Awaited<ReturnType<typeof startServe>>;
  let readerToken: string;

  beforeAll(async () => {
    for (const [a, text] of [
      [SECRET_LOG, 'salary of everyone\n'],
      [OPEN_LOG, 'rows loaded: 42\n'],
    ] as const) {
      const path = archivePath(home.dir, a);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, text);
      await catalogShipped(home.dir, [{ ...a, size: Buffer.byteLength(text) }]);
    }
    const created = await runCli(['token', 'create', 'reader', '--dags', 'public_*'], home.env);
    expect(created.code).toBe(0);
    readerToken = created.stdout.toString().trim();
    serve = await startServe([], home.env);
  });

  afterAll(async () => {
    await serve?.stop();
  });

  it('asks for a token, then shows the logs the token may read', async () => {
    const bp = await browser.open();
    bp.allowStatuses.add(401);
    await bp.page.goto(logPageUrl(serve.url, OPEN_LOG));
    await bp.page.getByLabel('Bearer token').fill(readerToken);
    await bp.page.getByRole('button', { name: 'Use token' }).click();
    await bp.page.getByText('rows loaded: 42').waitFor();
  });

  it('shows a reader without a grant for the DAG no log, only that it may not read it', async () => {
    const bp = await browser.open();
    bp.allowStatuses.add(401).add(403);
    await bp.page.goto(logPageUrl(serve.url, SECRET_LOG));
    await bp.page.getByLabel('Bearer token').fill(readerToken);
    await bp.page.getByRole('button', { name: 'Use token' }).click();
    await bp.page.getByText('You may not read this DAG’s logs.').waitFor();
    expect(await bp.page.locator('.line').count()).toBe(0);
    expect(await bp.page.content()).not.toContain('salary of everyone');
  });

  it('lists only the DAGs the token may read', async () => {
    const bp = await browser.open();
    bp.allowStatuses.add(401);
    await bp.page.goto(serve.url);
    await bp.page.getByLabel('Bearer token').fill(readerToken);
    await bp.page.getByRole('button', { name: 'Use token' }).click();
    await bp.page.getByRole('link', { name: 'public_etl' }).waitFor();
    expect(await bp.page.getByText('payroll').count()).toBe(0);
  });
});
