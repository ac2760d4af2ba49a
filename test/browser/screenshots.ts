// Writes docs/viewer-browse.png (the attempt browser) and docs/viewer-follow.png (a running
// attempt followed live) from a real `tasklog serve` and agent in a temporary TASKLOG_HOME.
//
//   npx -y pnpm@12.4.2 build && npx tsx test/browser/screenshots.ts
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startService, writeHomeLog } from '../support/cli.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { CHROMIUM, CHROMIUM_ARGS } from './support/launch.js';
import { archivePath, catalogShipped, logPageUrl } from './support/logs.js';

const docs = (name: string) => fileURLToPath(new URL(`../../docs/${name}`, import.meta.url));

const stamp = (s: number) =>
  `[${new Date(Date.UTC(2026, 0, 1, 6, 0, s)).toISOString().replace('Z', '+0000')}]`;

/** An Airflow-looking log: levels, a folded group, colours, a traceback. */
function airflowLog(task: string, failed: boolean): string {
  const lines = [
    `${stamp(0)} {local_task_job_runner.py:123} INFO - ::group::Pre task execution logs`,
    `${stamp(0)} {taskinstance.py:2614} INFO - Dependencies all met for dep_context=requeueable`,
    `${stamp(0)} {taskinstance.py:2867} INFO - Starting attempt 1 of 3`,
    `${stamp(1)} {local_task_job_runner.py:125} INFO - ::endgroup::`,
    `${stamp(1)} {${task}.py:18} INFO - reading \x1b[1mwarehouse.orders\x1b[0m since 2025-12-31`,
    `${stamp(2)} {${task}.py:31} INFO - \x1b[32m✔\x1b[0m 1,204,331 rows fetched in 4.2 s`,
    `${stamp(3)} {${task}.py:40} WARNING - 17 rows without a customer id were skipped`,
  ];
  if (failed) {
    lines.push(
      `${stamp(4)} {taskinstance.py:3311} ERROR - Task failed with exception`,
      'Traceback (most recent call last):',
      `  File "/opt/airflow/dags/${task}.py", line 52, in load`,
      '    conn.copy_expert(sql, buf)',
      'psycopg2.errors.UniqueViolation: duplicate key value violates unique constraint "orders_pkey"',
      `${stamp(5)} {taskinstance.py:1226} INFO - Marking task as \x1b[31mUP_FOR_RETRY\x1b[0m`,
    );
  } else {
    lines.push(`${stamp(4)} {taskinstance.py:1226} INFO - Marking task as \x1b[32mSUCCESS\x1b[0m`);
  }
  return `${lines.join('\n')}\n`;
}

const home = await makeTempDir('viewer-shots');
const env = {
  PATH: process.env.PATH,
  TASKLOG_HOME: home,
  TASKLOG__AGENT__TOKEN_SECRET: randomBytes(64).toString('base64'),
  TASKLOG__STORE__FLUSH_INTERVAL: '0.2',
  TASKLOG__LOGGING__LEVEL: 'warn',
};
const runs = ['scheduled__2026-01-01T06:00:00+00:00', 'scheduled__2025-12-31T06:00:00+00:00'];
const shipped = [];
for (const dagId of ['orders_daily', 'marketing_attribution', 'ml_feature_refresh']) {
  for (const runId of runs) {
    for (const [taskId, tryNumber] of [
      ['extract', 1],
      ['transform', 1],
      ['load', 2],
    ] as const) {
      for (let t = 1; t <= tryNumber; t++) {
        const a = { dagId, runId, taskId, tryNumber: t };
        const text = airflowLog(taskId, t < tryNumber);
        const path = archivePath(home, a);
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, text.repeat(taskId === 'transform' ? 40 : 1));
        shipped.push({ ...a, size: Buffer.byteLength(text) * (taskId === 'transform' ? 40 : 1) });
      }
    }
  }
}
await catalogShipped(home, shipped);

const agent = await startService('agent', [], env);
const serve = await startService('serve', [], env);
const running = {
  dagId: 'orders_daily',
  runId: 'manual__2026-01-01T09:30:00+00:00',
  taskId: 'backfill',
};
const rel = `dag_id=${running.dagId}/run_id=${running.runId}/task_id=${running.taskId}/attempt=1.log`;
const file = await writeHomeLog(
  home,
  rel,
  `${airflowLog('backfill', false).split('\n').slice(0, 6).join('\n')}\n`,
);
const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
try {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(`${serve.url}/api/v1/attempts?dagId=${running.dagId}&taskId=backfill`);
    const { attempts } = (await res.json()) as { attempts: { agentUrl: string | null }[] };
    if (attempts[0]?.agentUrl) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(`${serve.url}/dags/orders_daily/runs/${encodeURIComponent(runs[0]!)}`);
  await page.getByRole('link', { name: 'transform' }).waitFor();
  await page.screenshot({ path: docs('viewer-browse.png') });

  await page.goto(logPageUrl(serve.url, running));
  await page.getByText('● live').waitFor();
  for (let i = 1; i <= 24; i++) {
    await appendFile(
      file,
      `${stamp(10 + i)} {backfill.py:${60 + i}} INFO - partition 2026-01-${String(i).padStart(2, '0')}: \x1b[36m${(i * 48_211) % 90_000}\x1b[0m rows copied\n`,
    );
    await new Promise((r) => setTimeout(r, 40));
  }
  await page.getByText('partition 2026-01-24').waitFor();
  await page.screenshot({ path: docs('viewer-follow.png') });
  await writeFile(`${file}.done`, JSON.stringify({ state: 'success', exitCode: 0 }));
  console.log(`wrote ${docs('viewer-browse.png')} and ${docs('viewer-follow.png')}`);
} finally {
  await browser.close();
  await serve.stop();
  await agent.stop();
  await removeTempDir(home);
}
