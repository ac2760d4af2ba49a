/**
 * Writes an attempt's log the way a task runner does, with secrets masked before any byte
 * reaches the file, then prints the file. Also shows the streaming masker on its own.
 *
 *   DB_PASSWORD='s3cr3t-pa55' npx tsx examples/write-masked.ts --base /tmp/logs \
 *     'connecting with s3cr3t-pa55' 'done'
 *
 * Positional arguments are the lines the "task" prints; by default a few lines that leak a demo
 * password. --base defaults to a new temporary folder.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AIRFLOW_PATH_TEMPLATE, attemptKey, openAttemptLog, SecretMasker } from '@tasklog/core';

const { values: args, positionals } = parseArgs({
  options: { base: { type: 'string' } },
  allowPositionals: true,
});

// A demo secret unless the environment has its own DB_PASSWORD.
const env = { DB_PASSWORD: 'correct-horse-battery', ...process.env };
// Every variable whose name looks sensitive (…PASSWORD, …TOKEN, …SECRET, …API_KEY: Airflow's
// list), the passwords in any URL-valued variable, and the secret fields of AIRFLOW_CONN_* JSON.
const masker = SecretMasker.fromEnv(env);
// A secret known only at run time (a token fetched from a vault) is added by hand.
masker.add('runtime-token-0042');

const lines =
  positionals.length > 0
    ? positionals
    : [
        `connecting to postgres://airflow:${env.DB_PASSWORD}@db:5432/airflow`,
        'got token runtime-token-0042 from the vault',
        'nothing secret in this line',
      ];

const log = await openAttemptLog({
  baseLogFolder: args.base ?? (await mkdtemp(join(tmpdir(), 'tasklog-example-'))),
  pathTemplate: AIRFLOW_PATH_TEMPLATE,
  key: attemptKey({
    dagId: 'example_dag',
    runId: 'manual__2024-05-01',
    taskId: 'masked',
    tryNumber: 1,
  }),
  masker,
});
for (const line of lines) {
  // A task's output arrives in arbitrary pieces: a secret cut in two is still masked, because
  // the log holds back the bytes that could be the start of one until the next write.
  const half = Math.floor(line.length / 2);
  await log.write(line.slice(0, half));
  await log.write(`${line.slice(half)}\n`);
}
// close() releases what the masker held back, syncs, and creates the completion marker.
await log.close({ state: 'success', exitCode: 0 });
console.error(`wrote ${log.path}`);
process.stdout.write(await readFile(log.path));

// The same masking for any byte stream: push() returns what can be released now, end() the rest.
// (masker.transform() wraps this as a Node Transform for stream.pipeline.)
const stream = masker.stream();
const pieces = ['token: runtime-to', 'ken-0042 (streamed)\n'];
const out = Buffer.concat([...pieces.map((p) => stream.push(p)), stream.end()]);
process.stdout.write(out);
