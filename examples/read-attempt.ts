/**
 * Reads an attempt's log from a store, starting at a byte offset, and writes it to stdout.
 *
 *   npx tsx examples/read-attempt.ts --store file:///var/log/airflow-archive \
 *     --dag etl --run 'manual__2024-05-01T10:00:00+00:00' --task load --try 1 --offset 100
 *
 * The store URL can also come from TASKLOG_STORE_URL. Without either, the example first writes
 * a small demo log into a temporary `file://` store, so it runs as is.
 */
import { createHash } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type AttemptKey,
  attemptKey,
  formatAttempt,
  isTasklogError,
  openStore,
  parseIntStrict,
} from '@tasklog/core';

const { values: args } = parseArgs({
  options: {
    store: { type: 'string' },
    dag: { type: 'string', default: 'example_dag' },
    run: { type: 'string', default: 'manual__2024-05-01T10:00:00+00:00' },
    task: { type: 'string', default: 'extract' },
    'map-index': { type: 'string', default: '-1' },
    try: { type: 'string', default: '1' },
    offset: { type: 'string', default: '0' },
  },
});

// attemptKey() validates every field (InvalidInputError names the bad one) and freezes the key.
const key = attemptKey({
  dagId: args.dag,
  runId: args.run,
  taskId: args.task,
  mapIndex: parseIntStrict('--map-index', args['map-index']),
  tryNumber: parseIntStrict('--try', args.try),
});
const offset = parseIntStrict('--offset', args.offset);
const url = args.store ?? process.env.TASKLOG_STORE_URL ?? (await demoStore(key));

// openStore() picks the backend by URL scheme and imports only that backend. A cloud backend
// needs its SDK installed (see docs/LIBRARY.md); file:// needs nothing.
const store = await openStore(url);
try {
  // read() yields chunks in order, each byte once, from `offset` to what is stored now (for a
  // running attempt: what its writer has flushed). pipeline() respects stdout's backpressure.
  await pipeline(async function* () {
    for await (const chunk of store.read(key, { offset })) yield chunk.bytes;
  }, process.stdout);
} catch (err) {
  // Every failure is a TasklogError with a stable code: NOT_FOUND for an attempt the store does
  // not hold, OFFSET_OUT_OF_RANGE past the end, BACKEND_UNAVAILABLE for a store that is down.
  if (!isTasklogError(err)) throw err;
  console.error(`cannot read ${formatAttempt(key)} from ${store.url}: ${err.code}: ${err.message}`);
  process.exitCode = 1;
} finally {
  await store.close();
}

/** Writes a finished demo log into a new temporary folder and returns its `file://` URL. */
async function demoStore(key: AttemptKey): Promise<string> {
  const url = pathToFileURL(await mkdtemp(join(tmpdir(), 'tasklog-example-'))).href;
  const store = await openStore(url);
  try {
    const log = Buffer.from('[2024-05-01T10:00:01Z] starting\n[2024-05-01T10:00:02Z] done\n');
    const writer = await store.openWriter(key);
    await writer.append(log);
    // finish() checks what was stored against the size and sha256 the writer expected.
    await writer.finish({
      size: log.length,
      sha256: createHash('sha256').update(log).digest('hex'),
    });
  } finally {
    await store.close();
  }
  console.error(`(no --store given: wrote a demo log to ${url})`);
  return url;
}
