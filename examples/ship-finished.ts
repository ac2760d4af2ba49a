/**
 * Ships one finished log file to a store with the Shipper, and prints what it did.
 *
 *   npx tsx examples/ship-finished.ts --base /opt/airflow/logs \
 *     --file '/opt/airflow/logs/dag_id=etl/run_id=manual__2024-05-01/task_id=load/attempt=1.log' \
 *     --store s3://my-bucket/airflow-logs --catalog sqlite:///var/lib/tasklog/catalog.db \
 *     --state /var/lib/tasklog/state
 *
 * Every option has a default below a new temporary folder (see shipper-from-args.ts); without
 * --file the example writes a demo log first. The SQLite catalog needs `better-sqlite3` installed
 * (`npm i better-sqlite3`).
 */
import { attemptKey, openAttemptLog, type PathTemplate } from '@tasklog/core';
import { shipperFromArgs } from './shipper-from-args.js';

const { file: given, baseLogFolder, pathTemplate, store, shipper, close } = await shipperFromArgs();
try {
  const file = given ?? (await demoLog(baseLogFolder, pathTemplate));
  // Upload, verify (size and sha256 of what the store holds), record in the catalog. Running it
  // again is a no-op that answers `already-shipped`.
  const result = await shipper.shipFile(file, {
    onProgress: (done, total) => console.error(`sent ${done} of ${total} bytes`),
  });
  console.error(`shipped to ${store.url}`);
  console.log(JSON.stringify(result, null, 2));
} finally {
  await close();
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
