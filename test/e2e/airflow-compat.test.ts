import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Client } from '@elastic/elasticsearch';
import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ElasticsearchEmulator,
  startElasticsearchEmulator,
} from '../emulators/elasticsearch/index.js';
import { type GcsEmulator, startGcsEmulator } from '../emulators/gcs/index.js';
import { CLI, runCli, shipWithCli, writeHomeLog } from '../support/cli.js';
import { type S3rverFixture, startS3rver } from '../support/s3rver.js';
import { useTasklogHome } from '../support/tasklog-home.js';

// Airflow's S3TaskHandler and GCSTaskHandler keep a log at
// `<remote_base_log_folder>/<log_filename_template rendered>`, written in one piece.
const AIRFLOW_REL =
  'dag_id=example_bash_operator/run_id=scheduled__2024-01-01T00:00:00+00:00/task_id=runme_0/attempt=2.log';
const MAPPED_REL =
  'dag_id=example_dynamic/run_id=manual__2024-05-01T10:00:00.123456+00:00/task_id=add_one/map_index=3/attempt=1.log';
const AIRFLOW_LOG = Buffer.from(
  '[2024-01-01T00:00:05.123+0000] {taskinstance.py:1157} INFO - Dependencies all met\n' +
    '[2024-01-01T00:00:05.456+0000] {subprocess.py:93} INFO - héllo wörld 日本語\n' +
    '[2024-01-01T00:00:06.000+0000] {taskinstance.py:1400} INFO - Marking task as SUCCESS.',
);

/** `tasklog fetch` of the attempt at AIRFLOW_REL: its latest try, or the one `--try N` names. */
function fetchAirflowAttempt(env: NodeJS.ProcessEnv, ...options: string[]) {
  return runCli(
    [
      'fetch',
      'example_bash_operator',
      'scheduled__2024-01-01T00:00:00+00:00',
      'runme_0',
      ...options,
    ],
    env,
  );
}

/**
 * Runs `tasklog ship --follow` on the log at `rel` below `$TASKLOG_HOME/logs` while it grows,
 * until `flushed()` reports stored bytes; then `whileRunning()` looks at the archive, the marker
 * ends the attempt, and the shipper must exit 0. Resolves with the log's final bytes.
 */
async function followAttempt(
  rel: string,
  env: NodeJS.ProcessEnv,
  flushed: () => Promise<boolean>,
  whileRunning: () => Promise<void>,
): Promise<Buffer> {
  const file = await writeHomeLog(env.TASKLOG_HOME!, rel, '');
  const shipper = spawn(process.execPath, [CLI, 'ship', '--follow', file], {
    env: { ...env, TASKLOG__STORE__FLUSH_INTERVAL: '0.2', TASKLOG__LOGGING__LEVEL: 'silent' },
    stdio: 'ignore',
  });
  const exited = once(shipper, 'exit') as Promise<[number | null]>;
  try {
    for (let i = 0; i < 400; i++) {
      await appendFile(
        file,
        `[2024-01-01T00:00:${String(i % 60).padStart(2, '0')}] line ${i} é€𝄞\n`,
      );
      await sleep(50);
      if (i >= 5 && (await flushed())) break;
    }
    await whileRunning();
    await writeFile(`${file}.done`, '');
    const [code] = await exited;
    expect(code).toBe(0);
  } finally {
    shipper.kill('SIGKILL');
  }
  return readFile(file);
}

describe('Airflow compatibility of the S3 layout', () => {
  const cli = useTasklogHome('airflow-s3');
  let s3: S3rverFixture;
  let client: S3Client;

  beforeAll(async () => {
    s3 = await startS3rver('airflow-logs');
    client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' });
    cli.configure(s3.cliEnv('airflow/logs'));
  });

  afterAll(async () => {
    client?.destroy();
    await s3?.close();
  });

  it('fetches a log Airflow’s S3 handler wrote, picking the latest try', async () => {
    await client.send(
      new PutObjectCommand({
        Bucket: 'airflow-logs',
        Key: `airflow/logs/${AIRFLOW_REL}`,
        Body: AIRFLOW_LOG,
      }),
    );
    const got = await fetchAirflowAttempt(cli.env);
    expect(got.stderr).toBe('');
    expect(got.code).toBe(0);
    expect(got.stdout.equals(AIRFLOW_LOG)).toBe(true);
  });

  it('ships a log to exactly the key Airflow’s S3 handler reads, as plain text', async () => {
    const shipped = await shipWithCli(cli.env, MAPPED_REL, AIRFLOW_LOG);
    expect(shipped.code).toBe(0);
    const object = await client.send(
      new GetObjectCommand({ Bucket: 'airflow-logs', Key: `airflow/logs/${MAPPED_REL}` }),
    );
    expect(Buffer.from(await object.Body!.transformToByteArray()).equals(AIRFLOW_LOG)).toBe(true);
  });

  it('follows a running attempt outside the prefix Airflow’s S3 reader lists, then leaves one object at the key', async () => {
    const rel = MAPPED_REL.replace('attempt=1.log', 'attempt=2.log');
    const key = `airflow/logs/${rel}`;
    // Airflow's S3TaskHandler: list_keys(bucket, prefix=<key>), then read each key listed.
    const airflowLists = async () =>
      (
        (await client.send(new ListObjectsV2Command({ Bucket: 'airflow-logs', Prefix: key })))
          .Contents ?? []
      ).map((o) => o.Key);
    const folder = key.slice(0, key.lastIndexOf('/') + 1);
    const written = await followAttempt(
      rel,
      cli.env,
      async () =>
        (
          (await client.send(new ListObjectsV2Command({ Bucket: 'airflow-logs', Prefix: folder })))
            .Contents ?? []
        ).some((o) => (o.Size ?? 0) > 0),
      async () => {
        expect(await airflowLists()).toEqual([]);
      },
    );
    expect(await airflowLists()).toEqual([key]);
    const object = await client.send(new GetObjectCommand({ Bucket: 'airflow-logs', Key: key }));
    expect(Buffer.from(await object.Body!.transformToByteArray()).equals(written)).toBe(true);
  });
});

describe('Airflow compatibility of the GCS layout', () => {
  const cli = useTasklogHome('airflow-gcs', {
    TASKLOG__STORE__URL: 'gs://airflow-logs/airflow/logs',
    TASKLOG__GCS__PROJECT_ID: 'test',
  });
  let emulator: GcsEmulator;
  let storage: Storage;

  beforeAll(async () => {
    emulator = await startGcsEmulator();
    emulator.createBucket('airflow-logs');
    storage = new Storage({ apiEndpoint: emulator.url, projectId: 'test' });
    cli.configure({ TASKLOG__GCS__API_ENDPOINT: emulator.url });
  });

  afterAll(async () => {
    await emulator?.close();
  });

  it('fetches a log Airflow’s GCS handler wrote', async () => {
    await storage
      .bucket('airflow-logs')
      .file(`airflow/logs/${AIRFLOW_REL}`)
      .save(AIRFLOW_LOG, { resumable: false });
    const got = await fetchAirflowAttempt(cli.env, '--try', '2');
    expect(got.stderr).toBe('');
    expect(got.code).toBe(0);
    expect(got.stdout.equals(AIRFLOW_LOG)).toBe(true);
  });

  it('ships a log to exactly the object Airflow’s GCS handler reads, as plain text', async () => {
    const shipped = await shipWithCli(cli.env, MAPPED_REL, AIRFLOW_LOG);
    expect(shipped.stderr).toBe('');
    expect(shipped.code).toBe(0);
    const [bytes] = await storage
      .bucket('airflow-logs')
      .file(`airflow/logs/${MAPPED_REL}`)
      .download();
    expect(bytes.equals(AIRFLOW_LOG)).toBe(true);
  });

  it('follows a running attempt outside the prefix Airflow’s GCS reader lists, then leaves one object at the key', async () => {
    const rel = MAPPED_REL.replace('attempt=1.log', 'attempt=2.log');
    const name = `airflow/logs/${rel}`;
    // Airflow's GCSTaskHandler: list_blobs(bucket, prefix=<key>), then download each blob listed.
    const airflowLists = async () =>
      (await storage.bucket('airflow-logs').getFiles({ prefix: name }))[0].map((f) => f.name);
    const folder = name.slice(0, name.lastIndexOf('/') + 1);
    const written = await followAttempt(
      rel,
      cli.env,
      async () =>
        (await storage.bucket('airflow-logs').getFiles({ prefix: folder }))[0].some(
          (f) => Number(f.metadata.size) > 0,
        ),
      async () => {
        expect(await airflowLists()).toEqual([]);
      },
    );
    expect(await airflowLists()).toEqual([name]);
    const [bytes] = await storage.bucket('airflow-logs').file(name).download();
    expect(bytes.equals(written)).toBe(true);
  });
});

describe('Airflow compatibility of the Elasticsearch layout', () => {
  const cli = useTasklogHome('airflow-es');
  let emulator: ElasticsearchEmulator;
  let client: Client;

  beforeAll(async () => {
    emulator = await startElasticsearchEmulator({ refreshIntervalMs: 20 });
    client = new Client({ node: emulator.url });
    cli.configure({ TASKLOG__STORE__URL: `elasticsearch+${emulator.url}/airflow-logs` });
  });

  afterAll(async () => {
    await client?.close();
    await emulator?.close();
  });

  it('fetches a log indexed the way Airflow’s Elasticsearch handler writes it', async () => {
    // Airflow's handler (with write_stdout + json_format, shipped by Filebeat/Logstash) leaves
    // one document per line: log_id, a monotonic offset, message; then the end_of_log mark.
    const lines = AIRFLOW_LOG.toString().split('\n');
    const logId = 'example_bash_operator-runme_0-scheduled__2024-01-01T00:00:00+00:00--1-2';
    const docs = [...lines, 'end_of_log'].map((message, i) => ({
      log_id: logId,
      offset: 1_704_067_205_000_000_000 + i * 1000,
      message,
      host: 'worker-1',
    }));
    await client.bulk({
      operations: docs.flatMap((doc) => [{ index: { _index: 'airflow-logs' } }, doc]),
      refresh: true,
    });
    const got = await fetchAirflowAttempt(cli.env, '--try', '2');
    expect(got.stderr).toBe('');
    expect(got.code).toBe(0);
    // Documents Airflow's shippers indexed read as Airflow's UI joins them: "\n".join(messages).
    expect(got.stdout.toString()).toBe(AIRFLOW_LOG.toString());
  });

  it('ships a log Airflow’s query finds: match_phrase on log_id, sorted by offset', async () => {
    const shipped = await shipWithCli(cli.env, MAPPED_REL, `${AIRFLOW_LOG.toString()}\n`);
    expect(shipped.stderr).toBe('');
    expect(shipped.code).toBe(0);
    const result = await client.search<{ message: string; offset: number }>({
      index: 'airflow-logs',
      query: {
        bool: {
          must: [
            {
              match_phrase: {
                log_id: 'example_dynamic-add_one-manual__2024-05-01T10:00:00.123456+00:00-3-1',
              },
            },
            { range: { offset: { gt: 0 } } },
          ],
        },
      },
      sort: [{ offset: { order: 'asc' } }],
      size: 1000,
    });
    const messages = result.hits.hits.map((h) => h._source!.message);
    expect(messages).toEqual([...AIRFLOW_LOG.toString().split('\n'), 'end_of_log']);
  });
});
