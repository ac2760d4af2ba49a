import { mkdir, readdir, rename, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { digestStored } from '../src/hashing.js';
import { attemptKey, InvalidInputError, PathTemplate, Shipper } from '../src/index.js';
import { useShipperHomePerTest } from './shipper-fixture.js';

const template = new PathTemplate();
const SECRET = 'the agent’s own secret, readable by the agent but not by tasks\n';

describe('shipping never reads through a link', () => {
  const home = useShipperHomePerTest('links', { pathTemplate: template });
  let secretFile: string;
  let shipper: Shipper;

  beforeEach(async () => {
    secretFile = join(home.dir, 'secret.txt');
    await writeFile(secretFile, SECRET);
    shipper = new Shipper(home.options);
  });

  const keyOf = (taskId: string) =>
    attemptKey({ dagId: 'etl', runId: 'manual__1', taskId, tryNumber: 1 });
  const fileOf = (taskId: string) => join(home.base, template.render(keyOf(taskId)));

  async function archived(): Promise<string[]> {
    const entries = await readdir(join(home.dir, 'archive'), { recursive: true }).catch(() => []);
    return entries.map(String);
  }

  it('refuses a log file that is a symlink, and archives nothing', async () => {
    const file = fileOf('linked');
    await mkdir(dirname(file), { recursive: true });
    await symlink(secretFile, file);
    await expect(shipper.shipFile(file)).rejects.toBeInstanceOf(InvalidInputError);
    expect(await home.store.stat(keyOf('linked'))).toBeUndefined();
  });

  it('refuses a log reached through a symlinked folder on the way', async () => {
    const outside = join(home.dir, 'outside', 'task_id=t');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'attempt=1.log'), SECRET);
    const runFolder = join(home.base, 'dag_id=etl', 'run_id=manual__1');
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
      const stat = await home.store.stat(keyOf(taskId));
      if (stat?.complete) {
        const bytes = await digestStored(home.store, keyOf(taskId));
        expect(bytes.size).not.toBe(Buffer.byteLength(SECRET));
      }
    }
    for (const name of await archived()) expect(name).not.toContain('secret');
  });
});
