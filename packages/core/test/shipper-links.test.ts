import { mkdir, mkdtemp, readdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestStored } from '../src/hashing.js';
import {
  attemptKey,
  type Catalog,
  InvalidInputError,
  LocalStore,
  openCatalog,
  PathTemplate,
  Shipper,
} from '../src/index.js';

const template = new PathTemplate();
const SECRET = 'the agent’s own secret, readable by the agent but not by tasks\n';

describe('shipping never reads through a link', () => {
  let dir: string;
  let base: string;
  let secretFile: string;
  let store: LocalStore;
  let catalog: Catalog;
  let shipper: Shipper;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tasklog-links-'));
    base = join(dir, 'logs');
    secretFile = join(dir, 'secret.txt');
    await writeFile(secretFile, SECRET);
    store = new LocalStore({ root: join(dir, 'archive') });
    catalog = await openCatalog(`sqlite://${join(dir, 'catalog.db')}`, { migrate: 'auto' });
    shipper = new Shipper({
      store,
      catalog,
      pathTemplate: template,
      baseLogFolder: base,
      stateFolder: join(dir, 'state'),
      deleteLocalCopy: false,
    });
  });
  afterEach(async () => {
    await catalog.close();
    await rm(dir, { recursive: true, force: true });
  });

  const keyOf = (taskId: string) =>
    attemptKey({ dagId: 'etl', runId: 'manual__1', taskId, tryNumber: 1 });
  const fileOf = (taskId: string) => join(base, template.render(keyOf(taskId)));

  async function archived(): Promise<string[]> {
    const entries = await readdir(join(dir, 'archive'), { recursive: true }).catch(() => []);
    return entries.map(String);
  }

  it('refuses a log file that is a symlink, and archives nothing', async () => {
    const file = fileOf('linked');
    await mkdir(dirname(file), { recursive: true });
    await symlink(secretFile, file);
    await expect(shipper.shipFile(file)).rejects.toBeInstanceOf(InvalidInputError);
    expect(await store.stat(keyOf('linked'))).toBeUndefined();
  });

  it('refuses a log reached through a symlinked folder on the way', async () => {
    const outside = join(dir, 'outside', 'task_id=t');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'attempt=1.log'), SECRET);
    const runFolder = join(base, 'dag_id=etl', 'run_id=manual__1');
    await mkdir(runFolder, { recursive: true });
    await symlink(outside, join(runFolder, 'task_id=t'));
    await expect(
      shipper.shipFile(join(runFolder, 'task_id=t', 'attempt=1.log')),
    ).rejects.toBeInstanceOf(InvalidInputError);
    expect(await archived()).toEqual([]);
  });

  it('never archives the target of a link swapped in while the log is being shipped (200 races)', async () => {
    for (let i = 0; i < 200; i++) {
      const taskId = `race_${i}`;
      const file = fileOf(taskId);
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, `the task's own log ${i}\n`.repeat(50));
      const link = `${file}.swap`;
      await symlink(secretFile, link);
      const ship = shipper.shipFile(file).catch((err: unknown) => err);
      // The swap lands at a different moment of the ship each time.
      await new Promise((r) => setTimeout(r, i % 7));
      await rename(link, file);
      await ship;
      const stat = await store.stat(keyOf(taskId));
      if (stat?.complete) {
        const bytes = await digestStored(store, keyOf(taskId));
        expect(bytes.size).not.toBe(Buffer.byteLength(SECRET));
      }
    }
    for (const name of await archived()) expect(name).not.toContain('secret');
  });
});
