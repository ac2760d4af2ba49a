/**
 * Ships one finished log file to a store with the Shipper, and prints what it did.
 *
 *   npx tsx examples/ship-finished.ts --base /opt/airflow/logs \
 *     --file '/opt/airflow/logs/dag_id=etl/run_id=manual__2024-05-01/task_id=load/attempt=1.log' \
 *     --store s3://my-bucket/airflow-logs --catalog sqlite:///var/lib/tasklog/catalog.db \
 *     --state /var/lib/tasklog/state
 *
 * Every option has a default below a new temporary folder; without --file the example writes a
 * demo log first. The SQLite catalog needs `better-sqlite3` installed (`npm i better-sqlite3`).
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  attemptKey,
  openAttemptLog,
  openCatalog,
  openStore,
  PathTemplate,
  Shipper,
} from '@tasklog/core';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' },
    file: { type: 'string' },
    store: { type: 'string' },
    catalog: { type: 'string' },
    state: { type: 'string' },
  },
});

const temp = await mkdtemp(join(tmpdir(), 'tasklog-example-'));
// The folder the workers write logs under: attempt keys are parsed from paths below it.
const baseLogFolder = args.base ?? join(temp, 'logs');
// Airflow's default layout: dag_id=…/run_id=…/task_id=…/[map_index=…/]attempt=N.log
const pathTemplate = new PathTemplate();
const file = args.file ?? (await demoLog(baseLogFolder, pathTemplate));

const store = await openStore(args.store ?? pathToFileURL(join(temp, 'archive')).href, {
  pathTemplate,
});
// The catalog records each attempt's state, size and sha256 (what `tasklog` and the server list).
const catalog = await openCatalog(args.catalog ?? `sqlite://${join(temp, 'catalog.db')}`);
try {
  const shipper = new Shipper({
    store,
    catalog,
    pathTemplate,
    baseLogFolder,
    // Journals and locks: a ship killed half-way resumes from here instead of starting over.
    stateFolder: args.state ?? join(temp, 'state'),
    deleteLocalCopy: false,
  });
  // Upload, verify (size and sha256 of what the store holds), record in the catalog. Running it
  // again is a no-op that answers `already-shipped`.
  const result = await shipper.shipFile(file, {
    onProgress: (done, total) => console.error(`sent ${done} of ${total} bytes`),
  });
  console.error(`shipped to ${store.url}`);
  console.log(JSON.stringify(result, null, 2));
} finally {
  await catalog.close();
  await store.close();
}

/** Writes a finished demo log where a worker would, and returns its path. */
async function demoLog(base: string, template: PathTemplate): Promise<string> {
  const log = await openAttemptLog({
    baseLogFolder: base,
    pathTemplate: template,
    key: attemptKey({
      dagId: 'example_dag',
      runId: 'manual__2024-05-01',
      taskId: 'load',
      tryNumber: 1,
    }),
  });
  for (let i = 1; i <= 3; i++) await log.write(`line ${i} of the demo task\n`);
  await log.close({ state: 'success', exitCode: 0 });
  return log.path;
}
