import { appendFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AttemptKey,
  attemptKey,
  type Catalog,
  LocalStore,
  type LogStore,
  openAirflowDb,
  openCatalog,
  PathTemplate,
  Shipper,
} from '@tasklog/core';
import { Agent, airflowDbRule, idleRule } from '@tasklog/server';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestStored } from '../../packages/core/src/hashing.js';
import type { S3Store } from '../../packages/core/src/stores/s3/store.js';
import { sha256 } from '../support/hash.js';
import { type S3rverFixture, startS3rver } from '../support/s3rver.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { AirflowDbFixture, type AirflowVersion, type TaskInstanceRef } from './airflow-fixture.js';

/**
 * Airflow, simulated against the real PostgreSQL CI starts (PGlite elsewhere): its tables from
 * its own DDL, its task processes appending to `attempt=N.log`, its states moved as the
 * scheduler, worker and triggerer move them. The agent, told by Airflow's database alone when a
 * try ends, must leave each attempt as exactly one final object at Airflow's key — and never
 * finish a deferred or rescheduled try early.
 */
const SCAN_MS = 1000;
/** Time to ship a small log once the agent knows it finished (generous for a loaded CI). */
const SHIP_MS = 3000;
const template = new PathTemplate();
const RUN_ID = 'scheduled__2024-06-01T00:00:00+00:00';

let s3: S3rverFixture;
beforeAll(async () => {
  s3 = await startS3rver('airflow-sim');
});
afterAll(async () => {
  await s3?.close();
});

const stores: { name: string; open: (dir: string) => LogStore }[] = [
  { name: 'the local store', open: (dir) => new LocalStore({ root: join(dir, 'archive') }) },
  {
    name: 'S3',
    open: (dir) => s3.openStore(dir.split('/').pop()!),
  },
];

/** One line as Airflow's task process (2.x) or its supervisor's JSON log (3.x) writes it. */
function airflowLine(version: AirflowVersion, message: string): string {
  const at = new Date().toISOString();
  return version === '2.10'
    ? `[${at}] {taskinstance.py:2612} INFO - ${message}\n`
    : `${JSON.stringify({ timestamp: at, level: 'info', event: message, logger: 'task' })}\n`;
}

describe.each(['2.10', '3.x'] as const)('Airflow %s', (version) => {
  describe.each(stores)('on $name', ({ open }) => {
    let dir: string;
    let base: string;
    let airflow: AirflowDbFixture;
    let store: LogStore;
    let catalog: Catalog;
    let agent: Agent;

    beforeAll(async () => {
      dir = await makeTempDir('airflow-sim');
      base = join(dir, 'logs');
      await mkdir(base, { recursive: true });
      airflow = await AirflowDbFixture.create(version, 'postgres');
      store = open(dir);
      catalog = await openCatalog(`sqlite://${join(dir, 'catalog.db')}`, { migrate: 'auto' });
      const logger = pino({ level: process.env.SIM_LOG ?? 'silent' });
      agent = new Agent({
        shipper: new Shipper({
          store,
          catalog,
          pathTemplate: template,
          baseLogFolder: base,
          stateFolder: join(dir, 'state'),
          deleteLocalCopy: false,
        }),
        catalog,
        pathTemplate: template,
        baseLogFolder: base,
        agentUrl: 'http://worker-1:8793',
        logger,
        completion: airflowDbRule(
          await openAirflowDb(airflow.url),
          idleRule(3_600_000, 'abandoned'),
          logger,
        ),
        scanIntervalMs: SCAN_MS,
        flushIntervalMs: 100,
        pollIntervalMs: 20,
      });
      agent.start();
    });

    afterAll(async () => {
      await agent?.close();
      await catalog?.close();
      await store?.close();
      await airflow?.close();
      await removeTempDir(dir);
    });

    /** Appends to the attempt's log as Airflow's task process does. */
    async function write(key: AttemptKey, ...messages: string[]): Promise<void> {
      const file = join(base, template.render(key));
      await mkdir(dirname(file), { recursive: true });
      await appendFile(file, messages.map((m) => airflowLine(version, m)).join(''));
    }

    const keyOf = (ti: TaskInstanceRef, tryNumber: number) =>
      attemptKey({ ...ti, mapIndex: ti.mapIndex ?? -1, tryNumber });

    /** A task instance of run RUN_ID, added and at its first try, and that try's attempt key. */
    async function startFirstTry(taskId: string) {
      const ti = { dagId: 'sim', runId: RUN_ID, taskId };
      await airflow.addTaskInstance(ti);
      await airflow.startNextTry(ti);
      return { ti, key: keyOf(ti, 1) };
    }

    /** Waits until the attempt is recorded shipped; returns how long it took. */
    async function shippedWithin(key: AttemptKey, limitMs: number): Promise<number> {
      const start = Date.now();
      for (;;) {
        if ((await catalog.get(key))?.state === 'shipped') return Date.now() - start;
        if (Date.now() - start > limitMs + 10_000) return Date.now() - start;
        await sleep(50);
      }
    }

    /** The attempt is recorded shipped within two scans of its end (and the time to ship it). */
    async function expectShippedInTwoScans(key: AttemptKey): Promise<void> {
      expect(await shippedWithin(key, 2 * SCAN_MS + SHIP_MS)).toBeLessThan(2 * SCAN_MS + SHIP_MS);
    }

    /** Exactly one final object at Airflow's key, byte-identical to the local log. */
    async function expectOneFinalObject(key: AttemptKey): Promise<void> {
      const rel = template.render(key);
      const local = await readFile(join(base, rel));
      expect(await store.stat(key)).toMatchObject({ complete: true, size: local.length });
      expect(await digestStored(store, key)).toEqual({ size: local.length, sha256: sha256(local) });
      if (store instanceof LocalStore) {
        const beside = await readdir(dirname(join(dir, 'archive', rel)));
        expect(beside.filter((n) => n.startsWith(rel.split('/').pop()!))).toEqual([
          rel.split('/').pop(),
        ]);
      } else {
        // Airflow's reader lists every object whose name starts with the key: only the log.
        const { prefix } = store as S3Store;
        const key = prefix ? `${prefix}/${rel}` : rel;
        expect(await s3.listKeys(key)).toEqual([key]);
        expect(await s3.openUploads()).toEqual([]);
      }
    }

    /** The attempt is still running: not finished early, but archived up to date. */
    async function expectRunningAndUpToDate(key: AttemptKey): Promise<void> {
      const local = await readFile(join(base, template.render(key)));
      for (let i = 0; ; i++) {
        const stat = await store.stat(key);
        if (stat?.size === local.length || i > 100) {
          expect(stat).toMatchObject({ complete: false, size: local.length });
          break;
        }
        await sleep(50);
      }
      expect((await catalog.get(key))?.state).toBe('running');
    }

    it('a task that succeeds is archived within two scans of its state change', async () => {
      const { ti, key } = await startFirstTry('succeeds');
      await write(key, 'Started', 'Running command', 'Done. Returned value was: None');
      await airflow.setState(ti, 'success');
      await expectShippedInTwoScans(key);
      expect(await catalog.get(key)).toMatchObject({ airflowState: 'success' });
      await expectOneFinalObject(key);
    });

    it('a failed try goes up for retry and its log ends; the retry writes attempt=2.log', async () => {
      const { ti, key: first } = await startFirstTry('retries');
      await write(first, 'Started', 'Traceback (most recent call last):', 'ValueError: boom');
      await airflow.failIntoRetry(ti);
      await expectShippedInTwoScans(first);
      expect(await catalog.get(first)).toMatchObject({ airflowState: 'up_for_retry' });
      await expectOneFinalObject(first);

      expect(await airflow.startNextTry(ti)).toBe(2);
      const second = keyOf(ti, 2);
      await write(second, 'Started (try 2)', 'Done.');
      await airflow.setState(ti, 'success');
      await expectShippedInTwoScans(second);
      await expectOneFinalObject(second);
      await expectOneFinalObject(first);
    });

    it('a deferred task is archived up to date but not finished, and ends when it resumes and succeeds', async () => {
      const { ti, key } = await startFirstTry('defers');
      await write(key, 'Started', 'Pausing task as DEFERRED.');
      await airflow.setState(ti, 'deferred');
      await sleep(3 * SCAN_MS);
      await expectRunningAndUpToDate(key);

      await airflow.resume(ti);
      await write(key, 'Resuming after deferral', 'Done.');
      await airflow.setState(ti, 'success');
      await expectShippedInTwoScans(key);
      await expectOneFinalObject(key);
    });

    it('a sensor in reschedule mode keeps one try through its pokes and ends when it succeeds', async () => {
      const { ti, key } = await startFirstTry('sensor');
      for (let poke = 1; poke <= 2; poke++) {
        await write(key, `Poking for file (poke ${poke})`, 'Rescheduling task');
        await airflow.setState(ti, 'up_for_reschedule');
        await sleep(2 * SCAN_MS);
        await expectRunningAndUpToDate(key);
        await airflow.resume(ti);
      }
      expect((await airflow.row(ti)).tryNumber).toBe(1);
      await write(key, 'Poking for file (poke 3)', 'Success criteria met. Exiting.');
      await airflow.setState(ti, 'success');
      await expectShippedInTwoScans(key);
      await expectOneFinalObject(key);
    });
  });
});
