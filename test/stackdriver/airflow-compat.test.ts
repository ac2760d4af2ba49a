import { createHash } from 'node:crypto';
import { v2 } from '@google-cloud/logging';
import * as grpc from '@grpc/grpc-js';
import { attemptKey } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StackdriverStore } from '../../packages/core/src/stores/stackdriver-store.js';
import {
  type CloudLoggingEmulator,
  startCloudLoggingEmulator,
} from '../emulators/cloud-logging/index.js';

process.env.METADATA_SERVER_DETECTION = 'none';

const PROJECT = 'airflow-project';
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface ApiEntry {
  textPayload?: string;
  labels?: Record<string, string>;
  resource?: { type?: string; labels?: Record<string, string> };
  logName?: string;
}
interface Gapic {
  listLogEntries(
    req: object,
    opts: object,
  ): Promise<[ApiEntry[], unknown, { nextPageToken?: string }]>;
  close(): Promise<void>;
}

let emu: CloudLoggingEmulator;
let client: Gapic;

beforeAll(async () => {
  emu = await startCloudLoggingEmulator();
  client = new v2.LoggingServiceV2Client({
    projectId: PROJECT,
    apiEndpoint: emu.host,
    port: emu.port,
    sslCreds: grpc.credentials.createInsecure(),
  }) as Gapic;
});
afterAll(async () => {
  await client?.close();
  await emu?.close();
});

/**
 * Airflow's StackdriverRemoteLogIO.prepare_log_filter + read_logs: conditions joined by newlines,
 * labels quoted like Airflow does, `timestamp asc`, 1000 per page, messages = text payloads
 * joined by "\n" (empty payloads skipped).
 */
async function readLikeAirflow(logName: string, labels: Record<string, string>): Promise<string> {
  const esc = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const filter = [
    'resource.type="global"',
    `logName="projects/${PROJECT}/logs/${logName}"`,
    ...Object.entries(labels).map(([k, v]) => `labels.${k.includes('.') ? `"${k}"` : k}=${esc(v)}`),
  ].join('\n');
  const messages: string[] = [];
  let pageToken = '';
  do {
    const [entries, , response] = await client.listLogEntries(
      {
        resourceNames: [`projects/${PROJECT}`],
        filter,
        orderBy: 'timestamp asc',
        pageSize: 1000,
        pageToken,
      },
      { autoPaginate: false, retry: null },
    );
    for (const e of entries) if (e.textPayload) messages.push(e.textPayload);
    pageToken = response?.nextPageToken ?? '';
  } while (pageToken);
  return messages.join('\n');
}

describe("Cloud Logging layout compatible with Airflow's StackdriverTaskHandler", () => {
  const key = attemptKey({
    dagId: 'example_dag',
    runId: 'scheduled__2024-01-01T00:00:00+00:00',
    taskId: 'extract',
    mapIndex: 2,
    tryNumber: 3,
  });

  it("labels every entry with Airflow's task labels as strings, in log `airflow`, resource global", async () => {
    const store = StackdriverStore.fromUrl(
      'stackdriver://airflow',
      {},
      {
        projectId: PROJECT,
        apiEndpoint: `http://${emu.url}`,
      },
    );
    const content = Buffer.from('[2024-01-01] INFO - starting\n[2024-01-01] INFO - done\n');
    const writer = await store.openWriter(key);
    await writer.append(content);
    await writer.finish({ size: content.length, sha256: sha256(content) });
    await store.close();

    const entries = emu.store.all(`projects/${PROJECT}/logs/airflow`);
    const lines = entries.filter((e) => e.textPayload);
    expect(lines.map((e) => e.textPayload)).toEqual([
      '[2024-01-01] INFO - starting',
      '[2024-01-01] INFO - done',
    ]);
    for (const e of entries) {
      expect(e.resource).toEqual({ type: 'global', labels: {} });
      expect(e.labels).toMatchObject({
        dag_id: 'example_dag',
        run_id: 'scheduled__2024-01-01T00:00:00+00:00',
        task_id: 'extract',
        map_index: '2',
        try_number: '3',
      });
      // tasklog does not know the logical date, so it never invents one.
      expect(e.labels).not.toHaveProperty('logical_date');
      expect(e.labels).not.toHaveProperty('execution_date');
    }
    expect(lines[1]!.labels).toMatchObject({ offset: '29', length: '25' });
  });

  it("is read back by Airflow's filter (without logical_date, which tasklog does not set)", async () => {
    const text = await readLikeAirflow('airflow', {
      task_id: 'extract',
      dag_id: 'example_dag',
      try_number: '3',
    });
    expect(text).toBe('[2024-01-01] INFO - starting\n[2024-01-01] INFO - done');
  });

  it('writes the configured resource type and labels', async () => {
    const store = new StackdriverStore({
      logName: 'airflow-k8s',
      projectId: PROJECT,
      apiEndpoint: `http://${emu.url}`,
      resourceType: 'k8s_container',
      resourceLabels: { cluster_name: 'c1', namespace_name: 'airflow' },
    });
    const writer = await store.openWriter(key);
    await writer.append(Buffer.from('x\n'));
    await writer.finish({ size: 2, sha256: sha256(Buffer.from('x\n')) });
    await store.close();
    expect(emu.store.all(`projects/${PROJECT}/logs/airflow-k8s`)[0]!.resource).toEqual({
      type: 'k8s_container',
      labels: { cluster_name: 'c1', namespace_name: 'airflow' },
    });
  });
});
