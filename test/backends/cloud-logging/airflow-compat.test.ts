import { type AttemptKey, attemptKey, openAirflowDb } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runIdDates } from '../../../packages/core/src/stores/cloud-logging/logical-date.js';
import {
  CloudLoggingStore,
  type CloudLoggingStoreOptions,
} from '../../../packages/core/src/stores/cloud-logging/store.js';
import { AirflowDbFixture } from '../../airflow/airflow-fixture.js';
import {
  type CloudLoggingEmulator,
  startCloudLoggingEmulator,
} from '../../emulators/cloud-logging/index.js';
import { sha256 } from '../../support/hash.js';
import { writeLog } from '../../support/stores.js';

process.env.METADATA_SERVER_DETECTION = 'none';

const PROJECT = 'airflow-project';

let emu: CloudLoggingEmulator;
let logs = 0;

beforeAll(async () => {
  emu = await startCloudLoggingEmulator();
});
afterAll(async () => {
  await emu?.close();
});

function open(overrides: Partial<CloudLoggingStoreOptions> = {}) {
  const warnings: string[] = [];
  logs += 1;
  const store = new CloudLoggingStore({
    logName: `labels-${logs}`,
    projectId: PROJECT,
    apiEndpoint: `http://${emu.url}`,
    maxRetryDelayMs: 50,
    warn: (message) => warnings.push(message),
    ...overrides,
  });
  return { store, warnings };
}

function entriesOf(store: CloudLoggingStore) {
  return emu.store.all(`projects/${PROJECT}/logs/${store.logName}`);
}

const key = (runId: string, o: Partial<AttemptKey> = {}) =>
  attemptKey({ dagId: 'example_dag', runId, taskId: 'extract', tryNumber: 3, ...o });

describe("Cloud Logging entries carry Airflow's StackdriverTaskHandler labels", () => {
  it("labels every entry with Airflow's task labels and the logical date of a scheduled run, as strings", async () => {
    const { store, warnings } = open();
    const k = key('scheduled__2024-01-01T00:00:00+00:00', { mapIndex: 2 });
    await writeLog(
      store,
      k,
      Buffer.from('[2024-01-01] INFO - starting\n[2024-01-01] INFO - done\n'),
    );
    await store.close();
    const entries = entriesOf(store);
    for (const e of entries) {
      expect(e.resource).toEqual({ type: 'global', labels: {} });
      expect(e.labels).toMatchObject({
        dag_id: 'example_dag',
        task_id: 'extract',
        try_number: '3',
        // Airflow 3 filters on logical_date, Airflow 2 on execution_date: both, the same value.
        logical_date: '2024-01-01T00:00:00+00:00',
        execution_date: '2024-01-01T00:00:00+00:00',
        run_id: 'scheduled__2024-01-01T00:00:00+00:00',
        map_index: '2',
      });
    }
    expect(entries.filter((e) => e.jsonPayload).map((e) => e.jsonPayload)).toEqual([
      { message: '[2024-01-01] INFO - starting' },
      { message: '[2024-01-01] INFO - done' },
    ]);
    expect(warnings).toEqual([]);
  });

  it('takes the logical date of a run id as Airflow prints it, microseconds only when not zero', () => {
    expect(runIdDates('scheduled__2024-01-01T00:00:00+00:00')).toEqual({
      both: '2024-01-01T00:00:00+00:00',
    });
    expect(runIdDates('scheduled__2024-05-01T10:00:00.250000+00:00')).toEqual({
      both: '2024-05-01T10:00:00.250000+00:00',
    });
    expect(runIdDates('scheduled__2024-05-01T12:00:00+02:00')).toEqual({
      both: '2024-05-01T10:00:00+00:00',
    });
    // Airflow 3 names backfill runs after run_after (the end of the data interval).
    expect(runIdDates('backfill__2024-01-02T00:00:00+00:00')).toEqual({
      executionDate: '2024-01-02T00:00:00+00:00',
    });
    expect(runIdDates('manual__2024-01-02T00:00:00+00:00')).toEqual({});
    expect(runIdDates('scheduled__not-a-date')).toEqual({});
    expect(runIdDates('my_run')).toEqual({});
  });

  it.each(['2.10', '3.x'] as const)(
    "takes the logical date of other runs from Airflow %s's database, one query for writers opened together",
    async (version) => {
      const airflow = await AirflowDbFixture.create(version, 'sqlite');
      try {
        const runs = ['manual__2024-05-01T10:00:00+00:00', 'custom_run_id'];
        for (const runId of runs) {
          await airflow.addTaskInstance({ dagId: 'example_dag', runId, taskId: 'extract' });
        }
        const db = await openAirflowDb(airflow.url);
        const lookups = vi.spyOn(db, 'logicalDates');
        const { store, warnings } = open({ airflowDb: db });
        const writers = await Promise.all(runs.map((runId) => store.openWriter(key(runId))));
        await Promise.all(writers.map((w) => w.flush()));
        await store.close();
        expect(lookups).toHaveBeenCalledTimes(1);
        // The fixture dates its runs 2024-01-01 00:00 and a minute more for each next run.
        const dates = new Map(
          entriesOf(store).map((e) => [
            e.labels.run_id,
            [e.labels.logical_date, e.labels.execution_date],
          ]),
        );
        expect(Object.fromEntries(dates)).toEqual({
          [runs[0]!]: ['2024-01-01T00:00:00+00:00', '2024-01-01T00:00:00+00:00'],
          [runs[1]!]: ['2024-01-01T00:01:00+00:00', '2024-01-01T00:01:00+00:00'],
        });
        expect(warnings).toEqual([]);
      } finally {
        await airflow.close();
      }
    },
  );

  it('omits the labels it cannot know, with one warning per attempt naming it and why', async () => {
    const { store, warnings } = open();
    const manual = key('manual__2024-05-01T10:00:00+00:00');
    const w1 = await store.openWriter(manual);
    await w1.append(Buffer.from('a\n'));
    await w1.flush();
    await w1.abort();
    const w2 = await store.openWriter(manual);
    await w2.append(Buffer.from('b\n'));
    await w2.finish({ size: 4, sha256: sha256(Buffer.from('a\nb\n')) });
    const backfill = key('backfill__2024-01-02T00:00:00+00:00');
    await writeLog(store, backfill, Buffer.from('c\n'));
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toContain('run_id=manual__2024-05-01T10:00:00+00:00');
    expect(warnings[0]).toContain('agent.airflow_db_url is not set');
    expect(warnings[1]).toContain('run_id=backfill__2024-01-02T00:00:00+00:00');
    expect(warnings[1]).toContain('logical_date (read by Airflow 3) is unknown');
    const byRun = (runId: string) => entriesOf(store).filter((e) => e.labels.run_id === runId);
    for (const e of byRun(manual.runId)) {
      expect(e.labels).not.toHaveProperty('logical_date');
      expect(e.labels).not.toHaveProperty('execution_date');
    }
    for (const e of byRun(backfill.runId)) {
      expect(e.labels).not.toHaveProperty('logical_date');
      expect(e.labels.execution_date).toBe('2024-01-02T00:00:00+00:00');
    }
  });

  it("warns when Airflow's database has no logical date for the run, or cannot be opened", async () => {
    const airflow = await AirflowDbFixture.create('3.x', 'sqlite');
    try {
      const { store, warnings } = open({
        airflowDb: async () => openAirflowDb(airflow.url),
      });
      await writeLog(store, key('manual__unknown'), Buffer.from('x\n'));
      await store.close();
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain("Airflow's metadata database has no such dag run");

      const broken = open({ airflowDb: async () => openAirflowDb('sqlite:////nonexistent/a.db') });
      await writeLog(broken.store, key('manual__other'), Buffer.from('x\n'));
      await broken.store.close();
      expect(broken.warnings[0]).toContain("Airflow's metadata database could not be read");
    } finally {
      await airflow.close();
    }
  });

  it('writes the configured resource type and labels', async () => {
    const { store } = open({
      resourceType: 'k8s_container',
      resourceLabels: { cluster_name: 'c1', namespace_name: 'airflow' },
    });
    await writeLog(store, key('scheduled__2024-01-01T00:00:00+00:00'), Buffer.from('x\n'));
    await store.close();
    expect(entriesOf(store)[0]!.resource).toEqual({
      type: 'k8s_container',
      labels: { cluster_name: 'c1', namespace_name: 'airflow' },
    });
  });
});
