import type { AttemptKey, LogStore } from '@tasklog/core';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type {
  CloudWatchStore,
  CloudWatchStoreOptions,
} from '../../../packages/core/src/stores/cloudwatch/store.js';
import {
  type CloudWatchEmulator,
  startCloudWatchEmulator,
} from '../../emulators/cloudwatch/index.js';
import { attemptKeys } from '../../support/attempts.js';
import { cloudWatchStoreOn, cloudWatchUrl } from '../../support/cloudwatch.js';

/**
 * What the CloudWatchStore test files share: one emulator per file and a store on a new log
 * group per `newStore()`. `emulator` is set once `startEmulatorForThisFile()` has run its
 * beforeAll; `group` is the log group of the store made last. Test files import it as `cw`.
 */
process.env.AWS_ACCESS_KEY_ID ??= 'AKIDTASKLOGTEST';
process.env.AWS_SECRET_ACCESS_KEY ??= 'tasklog-test-secret';

export const RUN_ID = 'scheduled__2024-01-01T00:00:00+00:00';
export const AIRFLOW_STREAM =
  'dag_id=d/run_id=scheduled__2024-01-01T00_00_00+00_00/task_id=t/attempt=1.log';

export let emulator: CloudWatchEmulator;
export let group = '';
let n = 0;
const stores: LogStore[] = [];

export function startEmulatorForThisFile(): void {
  beforeAll(async () => {
    emulator = await startCloudWatchEmulator({ deniedAccessKeys: ['AKIDDENIED'] });
  });

  afterEach(async () => {
    emulator.faults.clear();
    for (const s of stores.splice(0)) await s.close();
  });

  afterAll(async () => {
    await emulator?.close();
  });
}

/** The store URL of log group `name`. */
export const arn = cloudWatchUrl;

/** A store on a fresh log group. */
export function newStore(overrides: Partial<CloudWatchStoreOptions> = {}): CloudWatchStore {
  group = `/airflow/task-logs-${n++}`;
  const store = cloudWatchStoreOn(emulator, group, 4, { maxRetryDelayMs: 50, ...overrides });
  stores.push(store);
  return store;
}

export const key: (overrides?: Partial<AttemptKey>) => AttemptKey = attemptKeys({
  dagId: 'd',
  runId: RUN_ID,
  taskId: 't',
});

/** The raw events' messages, in stream order. */
export function messages(stream: string): string[] {
  return emulator.events(group, stream).map((e) => e.message);
}
