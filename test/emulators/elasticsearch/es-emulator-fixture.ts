import { Client, errors, type estypes } from '@elastic/elasticsearch';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { type ElasticsearchEmulator, startElasticsearchEmulator } from './index.js';

/**
 * What the emulator's test files share: one emulator per file, the official client pointed at it,
 * and `fresh()` for an index name no other test uses. `emulator` and `client` are set once
 * `startEmulatorForThisFile()` has run its beforeAll.
 */
export let emulator: ElasticsearchEmulator;
export let client: Client;
let n = 0;

/** Starts the emulator before the file's first test, closes it after the last one. */
export function startEmulatorForThisFile(): void {
  beforeAll(async () => {
    // A long interval: refreshes happen only where a test asks for them.
    emulator = await startElasticsearchEmulator({ refreshIntervalMs: 60_000 });
    client = new Client({ node: emulator.url, maxRetries: 0 });
  });
  afterAll(async () => {
    await client?.close();
    await emulator?.close();
  });
  afterEach(() => {
    emulator.faults.clear();
    emulator.failBulkItems(undefined);
  });
}

/** A new index name. */
export function fresh(): string {
  return `emu-${n++}`;
}

/** Creates `index` with these mapped fields. */
export async function createIndex(
  index: string,
  properties: Record<string, estypes.MappingProperty>,
): Promise<void> {
  await client.indices.create({ index, mappings: { properties } });
}

/** The `error` object of a failed call, as Elasticsearch sent it. */
export async function failure(p: Promise<unknown>): Promise<{
  status: number;
  type: string;
  rootType: string;
  reason: string;
}> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(errors.ResponseError);
  const body = (err as errors.ResponseError).meta.body as {
    error: { type: string; reason: string; root_cause: { type: string }[] };
    status: number;
  };
  return {
    status: body.status,
    type: body.error.type,
    rootType: body.error.root_cause[0]!.type,
    reason: body.error.reason,
  };
}
