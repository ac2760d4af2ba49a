import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type AttemptKey, type LogStore, PathTemplate } from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { expect, it } from 'vitest';
import { shipWithCli } from '../support/cli.js';
import {
  compatKey,
  compatLog,
  compatText,
  expectReadWhole,
  finishedCompatAttempt,
  runningCompatAttempt,
} from './compat-log.js';
import { airflowUploadBody } from './s3-airflow-read.js';

/**
 * What the S3 and GCS compatibility tests share (imported as `airflow`): Airflow's
 * `remote_base_log_folder` (`s3://airflow-logs/airflow/logs`, `gs://airflow-logs/airflow/logs`),
 * the log, and the tests that go the same way on both, each file passing its archive.
 */
export const BUCKET = 'airflow-logs';
export const REMOTE_BASE = 'airflow/logs';
/** Airflow's default `log_filename_template`. */
export const template = new PathTemplate();

/** The compatibility log, bytes that are not UTF-8 included. */
export const LOG = compatLog();
/** The same log as valid UTF-8 (each invalid sequence replaced by U+FFFD). */
export const TEXT_LOG = compatText();

/** The name (S3 key) of an attempt's object in the bucket, where Airflow's handler keeps its log. */
export const objectName = (k: AttemptKey) => `${REMOTE_BASE}/${template.render(k)}`;

/** A blob store's archive at Airflow's remote log folder, as a compatibility file sets it up. */
export interface Archive {
  store: LogStore;
  /** Environment for the tasklog CLI on the archive. */
  cliEnv: NodeJS.ProcessEnv;
  /** `s3://…` or `gs://…` of an attempt's object. */
  uriOf(k: AttemptKey): string;
  /** What Airflow's handler reads for an attempt: the objects it lists, the texts it shows. */
  airflowRead(k: AttemptKey): Promise<{ uris: string[]; logs: string[] | null }>;
  /** Stores an object the way Airflow's handler uploads one. */
  put(name: string, body: Buffer | string): Promise<void>;
}

/**
 * Declares the tests of Airflow's reader over what tasklog wrote: nothing for a running attempt,
 * exactly the text of a finished one and of one `tasklog ship` archived.
 */
export function itShowsWhatTasklogWrote(archive: () => Archive): void {
  it('finds nothing for a running attempt, whose flushes ended inside characters', async () => {
    const { store, airflowRead } = archive();
    const k = compatKey('running');
    const writer = await runningCompatAttempt(store, k, LOG);
    expect(await airflowRead(k)).toEqual({ uris: [], logs: null });
    // Airflow then reads the worker's log server (tasklog's agent); tasklog has every byte.
    expect((await readAll(store, k)).equals(LOG)).toBe(true);
    await writer.abort();
  });

  it('shows exactly the text of a finished attempt, from its one object', async () => {
    const { store, airflowRead, uriOf } = archive();
    const k = compatKey('finished');
    await finishedCompatAttempt(store, k, TEXT_LOG);
    expect(await airflowRead(k)).toEqual({ uris: [uriOf(k)], logs: [TEXT_LOG.toString('utf8')] });
  });

  it('shows exactly the text of a log `tasklog ship` archived', async () => {
    const { cliEnv, airflowRead, uriOf } = archive();
    const k = compatKey('shipped', 3);
    const env = { ...cliEnv, TASKLOG__LOGGING__LEVEL: 'silent' };
    const shipped = await shipWithCli(env, template.render(k), TEXT_LOG);
    expect(shipped.stderr).toBe('');
    expect(shipped.code).toBe(0);
    expect(await airflowRead(k)).toEqual({ uris: [uriOf(k)], logs: [TEXT_LOG.toString('utf8')] });
  });
}

/**
 * Declares the tests of tasklog reading what Airflow's handler uploaded, with Airflow's trigger
 * log beside it: `goldens.first`, one upload; `goldens.appended`, an upload appended to it; and
 * the compatibility log as Airflow uploads it.
 */
export function itReadsWhatItUploaded(
  archive: () => Archive,
  goldens: { first: Buffer; appended: Buffer },
): void {
  const uploads: [string, string, Buffer][] = [
    ['one upload', 'golden_first', goldens.first],
    ['an upload appended to an earlier one', 'golden_appended', goldens.appended],
    ['the compatibility log', 'golden_compat', airflowUploadBody(TEXT_LOG)],
  ];
  for (const [label, taskId, body] of uploads) {
    it(`reads ${label} byte for byte: read, stat, list and tasklog fetch`, async () => {
      const { store, cliEnv, put } = archive();
      const k = compatKey(taskId);
      // As the handler uploads it (S3 `load_string`, GCS `upload_from_string`), with Airflow's
      // trigger log beside it.
      await put(objectName(k), body);
      await put(`${objectName(k)}.trigger.7.log`, 'trigger log\n');
      await expectReadWhole(store, k, body, cliEnv);
    });
  }
}

/**
 * Checks the running attempt's chunks a command-line client copied into `dir`: one file for each
 * object it `listed` (URIs or keys, in name order; a file is named by the last segment), holding
 * the log in that order. gcloud also copies the `running` marker, which is not a chunk.
 */
export async function expectCopiedChunks(dir: string, listed: string[]): Promise<void> {
  const names = (await readdir(dir)).filter((n) => n !== 'running').sort();
  expect(names).toEqual(listed.map((u) => u.slice(u.lastIndexOf('/') + 1)));
  const bytes = await Promise.all(names.map((n) => readFile(join(dir, n))));
  expect(Buffer.concat(bytes).equals(LOG)).toBe(true);
}
