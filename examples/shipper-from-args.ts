/**
 * The Shipper of ship-finished.ts and follow-running.ts, made from the options they share. Every
 * option has a default below a new temporary folder:
 *
 *   --base     the folder the workers write logs under (default: <temp>/logs)
 *   --file     the log to ship (default: a demo log the example writes)
 *   --store    the store's URL (default: file://<temp>/archive)
 *   --catalog  the catalog's URL (default: sqlite://<temp>/catalog.db; needs `better-sqlite3`)
 *   --state    the folder for journals and locks (default: <temp>/state)
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { openCatalog, openStore, PathTemplate, Shipper } from '@tasklog/core';

/** Parses the command line and opens the store, the catalog and the Shipper over them. */
export async function shipperFromArgs() {
  const { values: args } = parseArgs({
    options: {
      base: { type: 'string' },
      file: { type: 'string' },
      store: { type: 'string' },
      catalog: { type: 'string' },
      state: { type: 'string' },
    },
  });

  const temp = await mkdtemp(join(tmpdir(), 'tasklog-example-'));
  // The folder the workers write logs under: attempt keys are parsed from paths below it.
  const baseLogFolder = args.base ?? join(temp, 'logs');
  // Airflow's default layout: dag_id=…/run_id=…/task_id=…/[map_index=…/]attempt=N.log
  const pathTemplate = new PathTemplate();

  const store = await openStore(args.store ?? pathToFileURL(join(temp, 'archive')).href, {
    pathTemplate,
  });
  // The catalog records each attempt's state, size and sha256 (what `tasklog` and the server list).
  const catalog = await openCatalog(args.catalog ?? `sqlite://${join(temp, 'catalog.db')}`);
  const shipper = new Shipper({
    store,
    catalog,
    pathTemplate,
    baseLogFolder,
    // Journals and locks: a ship killed half-way resumes from here instead of starting over.
    stateFolder: args.state ?? join(temp, 'state'),
    deleteLocalCopy: false,
  });
  return {
    /** The --file given, if any. */
    file: args.file,
    baseLogFolder,
    pathTemplate,
    store,
    shipper,
    /** Closes the catalog and the store. */
    async close() {
      await catalog.close();
      await store.close();
    },
  };
}
