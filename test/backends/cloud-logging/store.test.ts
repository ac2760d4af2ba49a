import { readFile } from 'node:fs/promises';
import {
  AbortedError,
  type AttemptKey,
  attemptKey,
  BackendUnavailableError,
  InvalidInputError,
} from '@tasklog/core';
import { readAll } from '@tasklog/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CloudLoggingStore,
  type CloudLoggingStoreOptions,
  MAX_PIECE_BYTES,
  MAX_ENTRY_BYTES as SERVICE_MAX_ENTRY_BYTES,
} from '../../../packages/core/src/stores/cloud-logging/store.js';
import { entryBytes } from '../../emulators/cloud-logging/entry-store.js';
import {
  type CloudLoggingEmulator,
  type StoredEntry,
  startCloudLoggingEmulator,
} from '../../emulators/cloud-logging/index.js';
import { sdkLogging } from '../../emulators/cloud-logging/sdk-client.js';
import type { FaultAction } from '../../emulators/shared/fault-injector.js';
import { attemptKeys } from '../../support/attempts.js';
import { sha256 } from '../../support/hash.js';
import { freshName } from '../../support/servers.js';
import { writeLog, writeRunning } from '../../support/stores.js';

process.env.METADATA_SERVER_DETECTION = 'none';

const PROJECT = 'tasklog-sd';
const DAY = 24 * 3600 * 1000;
const key = attemptKeys({
  dagId: 'etl',
  runId: 'manual__2024-05-01T10:00:00+00:00',
  taskId: 'load',
});

let emu: CloudLoggingEmulator;
const stores: CloudLoggingStore[] = [];

beforeAll(async () => {
  emu = await startCloudLoggingEmulator();
});
afterEach(async () => {
  emu.faults.clear();
  while (stores.length) await stores.pop()!.close();
});
afterAll(async () => {
  await emu?.close();
});

function open(overrides: Partial<CloudLoggingStoreOptions> = {}): CloudLoggingStore {
  const store = new CloudLoggingStore({
    logName: freshName('sd'),
    projectId: PROJECT,
    apiEndpoint: `http://${emu.url}`,
    maxRetryDelayMs: 50,
    warn: () => {},
    ...overrides,
  });
  stores.push(store);
  return store;
}

/** The store's record entries (no markers, no end entry), in the service's order. */
function records(store: CloudLoggingStore): StoredEntry[] {
  return emu.store
    .all(`projects/${PROJECT}/logs/${store.logName}`)
    .filter((e) => e.labels.length !== undefined && e.labels.length !== '0');
}

/** Writes entries as given (REST, JSON form), e.g. golden fixtures. */
async function restWrite(entries: Record<string, unknown>[]): Promise<void> {
  const res = await fetch(`${emu.restUrl}/v2/entries:write`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ entries, partialSuccess: false }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

describe('CloudLoggingStore specifics', () => {
  it('reads an attempt written with timestamps a week old completely', async () => {
    const old = open({ now: () => Date.now() - 7 * DAY });
    const lines = Array.from({ length: 2500 }, (_, i) => `week-old line ${i}\n`).join('');
    await writeLog(old, key(), Buffer.from(lines));
    const reader = open({ logName: old.logName });
    expect((await readAll(reader, key())).toString()).toBe(lines);
    expect(await reader.stat(key())).toMatchObject({ size: lines.length, complete: true });
  });

  it('shows why the explicit timestamp condition matters: Log.getEntries alone sees nothing', async () => {
    const old = open({ now: () => Date.now() - 7 * DAY });
    await writeLog(old, key(), Buffer.from('hidden by the 24 h default\n'));
    const logging = sdkLogging(emu, PROJECT);
    const [entries] = await logging
      .log(old.logName)
      .getEntries({ filter: 'labels.dag_id="etl"', autoPaginate: false });
    expect(entries).toHaveLength(0);
  });

  it('splits a line longer than an entry into pieces that each fit, and joins them', async () => {
    const store = open();
    // Control characters are the worst case: JSON spells each one in 6 bytes.
    const line = Buffer.concat([
      Buffer.alloc(600 * 1024, 'a'),
      Buffer.alloc(300 * 1024, 1),
      Buffer.from('\n'),
    ]);
    await writeLog(store, key(), line);
    const entries = records(store);
    expect(entries.length).toBeGreaterThanOrEqual(Math.ceil(line.length / MAX_PIECE_BYTES));
    for (const e of entries) expect(entryBytes(e)).toBeLessThanOrEqual(SERVICE_MAX_ENTRY_BYTES);
    expect((await readAll(store, key())).equals(line)).toBe(true);
  });

  it('cuts a line only where an entry must end: at 240 KiB, never inside a character', async () => {
    const store = open();
    const fits = `${'€'.repeat(80_000)}\n`; // 240,001 bytes: one entry
    const long = `${'€'.repeat(90_000)}\n`; // 270,001 bytes: two
    await writeLog(store, key(), Buffer.from(fits + long));
    const shown = records(store).map((e) => e.jsonPayload?.message as string);
    expect(shown).toEqual([
      '€'.repeat(80_000),
      '€'.repeat(Math.floor(MAX_PIECE_BYTES / 3)),
      '€'.repeat(90_000 - Math.floor(MAX_PIECE_BYTES / 3)),
    ]);
    expect((await readAll(store, key())).toString()).toBe(fits + long);
  });

  it('round-trips empty lines, CRLF, multi-byte, invalid UTF-8 and a last line without newline', async () => {
    const store = open();
    const content = Buffer.concat([
      Buffer.from('\n\nfirst\r\n\r\né€𝄞 mixed\n'),
      Buffer.from([0xff, 0xfe, 0x41, 0x0a, 0xc3]),
      Buffer.from('\nno newline at the end'),
    ]);
    await writeLog(store, key(), content);
    expect((await readAll(store, key())).equals(content)).toBe(true);
    for (let offset = 0; offset <= content.length; offset += 3) {
      expect((await readAll(store, key(), { offset })).equals(content.subarray(offset))).toBe(true);
    }
    // What Airflow shows, and beside it what exactness needs.
    expect(
      records(store).map((e) => [e.jsonPayload, e.labels.tasklog_cr ?? '', e.labels.length]),
    ).toEqual([
      [{ message: '' }, '', '1'],
      [{ message: '' }, '', '1'],
      [{ message: 'first' }, 'true', '7'],
      [{ message: '' }, 'true', '2'],
      [{ message: 'é€𝄞 mixed' }, '', '16'],
      [
        {
          message: '\ufffd\ufffdA',
          tasklog_bytes: Buffer.from([0xff, 0xfe, 0x41]).toString('base64'),
        },
        '',
        '4',
      ],
      [{ message: '\ufffd', tasklog_bytes: Buffer.from([0xc3]).toString('base64') }, '', '2'],
      [{ message: 'no newline at the end' }, '', '21'],
    ]);
  });

  it('reads entries of the earlier layout (textPayload, base64 label), finished and running, and resumes them', async () => {
    const golden = JSON.parse(
      await readFile(new URL('./golden/tasklog-v1-entries.json', import.meta.url), 'utf8'),
    ) as { log: string; running: string; entries: Record<string, unknown>[] };
    const store = open({ projectId: 'tasklog-golden', logName: 'airflow' });
    await restWrite(golden.entries);
    const log = Buffer.from(golden.log, 'base64');
    const finished = attemptKey({
      dagId: 'golden_dag',
      runId: 'scheduled__2024-01-01T00:00:00+00:00',
      taskId: 'extract',
      tryNumber: 1,
    });
    const running = attemptKey({
      dagId: 'golden_dag',
      runId: 'manual__2024-01-02T10:00:00.123456+00:00',
      taskId: 'load',
      mapIndex: 3,
      tryNumber: 2,
    });
    expect((await readAll(store, finished)).equals(log)).toBe(true);
    expect((await readAll(store, finished, { offset: 100 })).equals(log.subarray(100))).toBe(true);
    expect(await store.stat(finished)).toMatchObject({
      size: log.length,
      complete: true,
      sha256: sha256(log),
    });
    expect((await readAll(store, running)).equals(log.subarray(0, 100))).toBe(true);
    expect(await store.stat(running)).toMatchObject({ size: 100, complete: false });
    const listed: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'golden_dag' })) listed.push(k);
    expect(listed).toEqual(expect.arrayContaining([finished, running]));
    expect(listed).toHaveLength(2);

    // A writer of the new layout continues the running attempt where the old one stopped.
    const writer = await store.openWriter(running);
    expect(writer.committedOffset).toBe(100);
    await writer.append(log.subarray(100));
    await writer.finish({ size: log.length, sha256: sha256(log) });
    expect((await readAll(store, running)).equals(log)).toBe(true);
  });

  it('shows a line flushed in parts once, whole, when it ends; a new writer finishes a line an old one began', async () => {
    const store = open();
    const k = key();
    const first = await writeRunning(store, k, [
      Buffer.from('whole line\nhalf'),
      Buffer.from(' of a '),
    ]);
    expect(records(store).map((e) => e.jsonPayload)).toEqual([
      { message: 'whole line' },
      { tasklog_text: 'half' },
      { tasklog_text: ' of a ' },
    ]);
    await first.abort();
    const second = await store.openWriter(k);
    expect(second.committedOffset).toBe(21);
    await second.append(Buffer.from('line\nrest'));
    const content = Buffer.from('whole line\nhalf of a line\nrest');
    await second.finish({ size: content.length, sha256: sha256(content) });
    expect(records(store).filter((e) => 'message' in (e.jsonPayload ?? {}))).toMatchObject([
      { jsonPayload: { message: 'whole line' }, labels: { offset: '0', length: '11' } },
      { jsonPayload: { message: 'half of a line' }, labels: { offset: '11', length: '15' } },
      { jsonPayload: { message: 'rest' }, labels: { offset: '26', length: '4' } },
    ]);
    expect((await readAll(store, k)).equals(content)).toBe(true);
  });

  it('keeps attempts apart whose ids differ only in case (the query language ignores case)', async () => {
    const store = open();
    await writeLog(store, key({ dagId: 'ETL' }), Buffer.from('upper\n'));
    await writeLog(store, key({ dagId: 'etl' }), Buffer.from('lower\n'));
    expect((await readAll(store, key({ dagId: 'ETL' }))).toString()).toBe('upper\n');
    expect((await readAll(store, key({ dagId: 'etl' }))).toString()).toBe('lower\n');
    const listed: string[] = [];
    for await (const k of store.list({ dagId: 'etl' })) listed.push(k.dagId);
    expect(listed).toEqual(['etl']);
  });

  it('hides a deleted attempt behind a tombstone and serves only what is written after it', async () => {
    const store = open();
    await writeLog(store, key(), Buffer.from('before delete\n'));
    await store.delete(key());
    expect(await store.stat(key())).toBeUndefined();
    await writeLog(store, key(), Buffer.from('after\n'));
    expect((await readAll(store, key())).toString()).toBe('after\n');
    const listed: AttemptKey[] = [];
    for await (const k of store.list({ dagId: 'etl' })) listed.push(k);
    expect(listed).toHaveLength(1);
  });

  it('ignores the SDK diagnostic entry and entries without offsets under the same labels', async () => {
    const store = open();
    const k = key();
    await writeLog(store, k, Buffer.from('tasklog line\n'));
    const logging = sdkLogging(emu, PROJECT);
    const log = logging.log(store.logName);
    const labels = {
      dag_id: k.dagId,
      run_id: k.runId,
      task_id: k.taskId,
      map_index: '-1',
      try_number: '1',
    };
    await log.write(
      log.entry({ resource: { type: 'global' }, labels }, 'written by Airflow itself'),
    );
    expect((await readAll(store, k)).toString()).toBe('tasklog line\n');
    expect(await store.stat(k)).toMatchObject({ size: 13, complete: true });
  });

  /**
   * Writes 300 lines while WriteLogEntries answers the first six calls with `actions` in turn,
   * then checks the log reads back whole and the service holds each record once.
   */
  async function expectStoredOnceThrough(
    store: CloudLoggingStore,
    actions: FaultAction[],
    line: string,
  ): Promise<void> {
    emu.faults.add({ match: { method: 'WriteLogEntries' }, action: actions, times: 6 });
    const content = Buffer.from(Array.from({ length: 300 }, (_, i) => `${line} ${i}\n`).join(''));
    await writeLog(store, key(), content);
    expect((await readAll(store, key())).equals(content)).toBe(true);
    const raw = emu.store.all(`projects/${PROJECT}/logs/${store.logName}`);
    expect(new Set(raw.map((e) => `${e.labels.offset}+${e.labels.length}`)).size).toBe(raw.length);
  }

  it('retries transient failures and resends the same entries, which the service stores once', async () => {
    await expectStoredOnceThrough(
      open(),
      [{ reset: true, resetAfterCommit: true }, { status: 503 }, { status: 429 }],
      'retried',
    );
  });

  it('retries resets and 5xx over REST too, storing each record once', async () => {
    await expectStoredOnceThrough(
      open({ apiEndpoint: emu.restUrl, transport: 'rest' }),
      [{ reset: true, resetAfterCommit: true }, { reset: true }, { status: 500 }],
      'rest',
    );
  });

  it('fails a writer whose batch cannot be stored, and a new writer resumes after the stored bytes', async () => {
    const store = open({ maxAttempts: 2 });
    const first = await store.openWriter(key());
    await first.append(Buffer.from('one\n'));
    await first.flush();
    const outage = emu.faults.add({
      match: { method: 'WriteLogEntries' },
      action: { status: 503 },
    });
    await first.append(Buffer.from('two\n'));
    await expect(first.flush()).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(first.append(Buffer.from('x'))).rejects.toBeInstanceOf(BackendUnavailableError);
    outage.remove();
    const second = await store.openWriter(key());
    expect(second.committedOffset).toBe(4);
    await second.append(Buffer.from('two\n'));
    await second.finish({ size: 8, sha256: sha256(Buffer.from('one\ntwo\n')) });
    expect((await readAll(store, key())).toString()).toBe('one\ntwo\n');
  });

  it('gives up after maxAttempts with BackendUnavailableError carrying the gRPC error', async () => {
    const store = open({ maxAttempts: 2 });
    emu.faults.add({ match: { method: 'ListLogEntries' }, action: { status: 503 } });
    const before = emu.requestLog.length;
    const err = await store.stat(key()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).cause).toMatchObject({ code: 14 });
    expect(emu.requestLog.slice(before).filter((r) => r.fault === '503').length).toBe(2);
  });

  it('turns an abort into AbortedError', async () => {
    const store = open();
    const controller = new AbortController();
    controller.abort();
    await expect(store.openWriter(key(), { signal: controller.signal })).rejects.toBeInstanceOf(
      AbortedError,
    );
  });

  it('reports missing credentials as BackendUnavailableError instead of crashing', async () => {
    const saved = process.env.GOOGLE_APPLICATION_CREDENTIALS;
    process.env.GOOGLE_APPLICATION_CREDENTIALS = '/nonexistent/tasklog-adc.json';
    try {
      const store = open({ apiEndpoint: undefined });
      await expect(store.ping()).rejects.toBeInstanceOf(BackendUnavailableError);
      // A second call starts over instead of reusing a broken client.
      await expect(store.stat(key())).rejects.toBeInstanceOf(BackendUnavailableError);
    } finally {
      if (saved === undefined) delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
      else process.env.GOOGLE_APPLICATION_CREDENTIALS = saved;
    }
  });

  it('reports a missing project as BackendUnavailableError', async () => {
    const saved = { ...process.env };
    for (const v of [
      'GOOGLE_CLOUD_PROJECT',
      'GCLOUD_PROJECT',
      'GCP_PROJECT',
      'GOOGLE_APPLICATION_CREDENTIALS',
    ]) {
      delete process.env[v];
    }
    process.env.CLOUDSDK_CONFIG = '/nonexistent/gcloud';
    try {
      const store = open({ projectId: undefined });
      const err = await store.ping().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BackendUnavailableError);
    } finally {
      process.env = saved;
    }
  });

  it('parses stackdriver://LOG_NAME and rejects names the API does not allow', () => {
    const store = CloudLoggingStore.fromUrl('stackdriver://airflow', {});
    expect(store.logName).toBe('airflow');
    expect(store.url).toBe('stackdriver://airflow');
    expect(CloudLoggingStore.fromUrl('stackdriver://team%2Fairflow', {}).logName).toBe(
      'team/airflow',
    );
    expect(() => CloudLoggingStore.fromUrl('stackdriver://bad name', {})).toThrow(
      InvalidInputError,
    );
    expect(() => CloudLoggingStore.fromUrl('s3://bucket', {})).toThrow(InvalidInputError);
  });

  it('writes over REST as well as gRPC', async () => {
    const store = open({ apiEndpoint: emu.restUrl, transport: 'rest' });
    await writeLog(store, key(), Buffer.from('over rest é\n'));
    expect((await readAll(store, key())).toString()).toBe('over rest é\n');
  });
});
