/**
 * Follows a running attempt's log: new lines go to the store while the task writes them, and
 * when the task's completion marker (`<log>.done`) appears the log is finished, verified and
 * recorded like a shipped one. Ctrl-C stops following; what was read stays in the store.
 *
 *   npx tsx examples/follow-running.ts --base /opt/airflow/logs \
 *     --file '/opt/airflow/logs/dag_id=etl/run_id=manual__2024-05-01/task_id=load/attempt=1.log' \
 *     --store file:///var/log/airflow-archive
 *
 * Without --file the example runs a demo task itself: it writes a line every 300 ms and then
 * closes its log, which creates the marker. Options default as shipper-from-args.ts says.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type AttemptLog, attemptKey, openAttemptLog, type PathTemplate } from '@tasklog/core';
import { shipperFromArgs } from './shipper-from-args.js';

const { file: given, baseLogFolder, pathTemplate, shipper, close } = await shipperFromArgs();
// follow() opens the file when it starts, so the task must have created it already.
const demo = given === undefined ? await startDemoTask(baseLogFolder, pathTemplate) : undefined;
const file = given ?? demo!.log.path;
const stop = new AbortController();
process.once('SIGINT', () => stop.abort());
try {
  const result = await shipper.follow(file, {
    signal: stop.signal,
    // A worker that dies loses at most one interval: everything flushed is durable and readable.
    flushIntervalMs: 500,
    pollIntervalMs: 100,
    onFlush: (committed) => console.error(`flushed: ${committed} bytes readable in the store`),
    onRetry: (err, failures, delayMs) =>
      console.error(`store unavailable (${failures}), retrying in ${delayMs} ms: ${err}`),
  });
  // `shipped` once the marker appeared; `stopped` (with the committed offset) after Ctrl-C.
  console.log(JSON.stringify(result, null, 2));
} finally {
  await demo?.done;
  await close();
}

/** Opens a demo task's log and keeps writing to it in the background until it closes it. */
async function startDemoTask(base: string, template: PathTemplate) {
  const log: AttemptLog = await openAttemptLog({
    baseLogFolder: base,
    pathTemplate: template,
    key: attemptKey({
      dagId: 'example_dag',
      runId: 'manual__2024-05-01',
      taskId: 'follow',
      tryNumber: 1,
    }),
    timestamps: true,
  });
  const done = (async () => {
    for (let i = 1; i <= 5; i++) {
      await log.write(`step ${i} of 5\n`);
      await sleep(300);
    }
    // close() syncs the file and then creates `<log>.done`: the follow's cue to finish.
    await log.close({ state: 'success', exitCode: 0 });
  })();
  return { log, done };
}
