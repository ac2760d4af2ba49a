/**
 * Stores one finished log in a child process that the test kills at a moment of its choosing:
 *
 *   node --import tsx test/support/ship-child.ts '<ShipJob as JSON>'
 *
 * `finish` mode opens a writer (with the journal), appends the log in `pieceBytes` pieces with a
 * flush after each, then prints `ready` and calls finish(); `upload` mode stats the attempt (as the
 * shipper does), prints `ready` and calls upload(). Either prints `done` when the call returned. Everything up to `ready` is setup, so a
 * kill timed from `ready` lands inside the call under test.
 */
import { readFile } from 'node:fs/promises';
import { fileJournal } from './file-journal.js';
import { openJobStore } from './job-store.js';
import type { ShipJob } from './killable-ship.js';

const job = JSON.parse(process.argv[2]!) as ShipJob;
const store = await openJobStore(job.store);
const journal = fileJournal(job.journal);
const expected = { size: job.size, sha256: job.sha256 };

if (job.mode === 'finish') {
  const log = await readFile(job.file);
  const writer = await store.openWriter(job.key, { journal });
  for (let at = writer.committedOffset; at < log.length; at += job.pieceBytes) {
    await writer.append(log.subarray(at, at + job.pieceBytes));
    await writer.flush();
  }
  process.stdout.write('ready\n');
  await writer.finish(expected);
} else {
  // As the shipper does first; it also loads the store's SDK, which is setup, not the upload.
  await store.stat(job.key);
  process.stdout.write('ready\n');
  await store.upload!(job.key, { path: job.file, ...expected }, { journal });
}
process.stdout.write('done\n');
await store.close();
