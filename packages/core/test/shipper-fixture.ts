import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { makeTempDir, removeTempDir } from '../../../test/support/temp-dir.js';
import {
  type Catalog,
  LocalStore,
  type LocalStoreOptions,
  openCatalog,
  PathTemplate,
  type ShipperOptions,
} from '../src/index.js';

/** What a shipper test works in: a temporary folder `dir` (`tasklog-<label>-…`) and what is in it. */
export interface ShipperHome {
  dir: string;
  /** The base log folder, `<dir>/logs` (not created). */
  base: string;
  /** The archive, at `<dir>/archive`. */
  store: LocalStore;
  /** A SQLite catalog at `<dir>/catalog.db`. */
  catalog: Catalog;
  /** A shipper from `base` to `store` and `catalog`, its state in `<dir>/state`, local copies kept. */
  options: ShipperOptions;
}

/**
 * Registers hooks that give every test a new ShipperHome, in the fields of the object returned,
 * and remove it after the test. `storeOptions` are the archive's (its path template also the
 * shipper's).
 */
export function useShipperHomePerTest(
  label: string,
  storeOptions: Omit<LocalStoreOptions, 'root'> = {},
): ShipperHome {
  const home = {} as ShipperHome;
  beforeEach(async () => {
    const dir = await makeTempDir(label);
    const store = new LocalStore({ ...storeOptions, root: join(dir, 'archive') });
    const catalog = await openCatalog(`sqlite://${join(dir, 'catalog.db')}`, { migrate: 'auto' });
    const base = join(dir, 'logs');
    const options: ShipperOptions = {
      store,
      catalog,
      pathTemplate: storeOptions.pathTemplate ?? new PathTemplate(),
      baseLogFolder: base,
      stateFolder: join(dir, 'state'),
      deleteLocalCopy: false,
    };
    Object.assign(home, { dir, base, store, catalog, options });
  });
  afterEach(async () => {
    await home.catalog.close();
    await removeTempDir(home.dir);
  });
  return home;
}
