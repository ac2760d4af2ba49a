import { appendFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { attemptKeys } from '../../../test/support/attempts.js';
import { sha256 } from '../../../test/support/hash.js';
import { digestStored } from '../src/hashing.js';
import {
  AttemptBusyError,
  ConflictError,
  InvalidInputError,
  type LogStore,
  PathTemplate,
  Shipper,
  type ShipperOptions,
} from '../src/index.js';
import { useShipperHomePerTest } from './shipper-fixture.js';

const template = new PathTemplate();
/** The attempts shipped here: etl's `load` on 2024-01-01, its first try unless a test says. */
const keyOf = attemptKeys({
  dagId: 'etl',
  runId: 'scheduled__2024-01-01T00:00:00+00:00',
  taskId: 'load',
});
const key = keyOf();
const rel = template.render(key);

function content(bytes: number, seed = 7): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `[${i}] ${'é€𝄞 x'.repeat((i * seed) % 97)}\n`;
    lines.push(line);
    size += Buffer.byteLength(line);
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}
/** The same store without its optional one-pass `upload()`. */
function withoutUpload(store: LogStore): LogStore {
  return new Proxy(store, {
    get: (target, prop) => {
      if (prop === 'upload') return undefined;
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Ships `file` and aborts once 700 kB went out: the ship fails half-way through. */
async function shipUntilAborted(options: ShipperOptions, file: string): Promise<void> {
  const abort = new AbortController();
  const first = new Shipper(options).shipFile(file, {
    signal: abort.signal,
    onProgress: (done) => {
      if (done >= 700_000) abort.abort();
    },
  });
  await expect(first).rejects.toThrow();
}

describe('Shipper', () => {
  // Small chunks so that a log spans many chunk files and can be interrupted in the middle.
  const home = useShipperHomePerTest('shipper', {
    pathTemplate: template,
    chunkSize: 64 * 1024,
  });
  let file: string;

  beforeEach(async () => {
    file = join(home.base, ...rel.split('/'));
    await mkdir(dirname(file), { recursive: true });
  });

  /**
   * Writes `log` to `file` and starts another shipper following it; resolves once the catalog has
   * the attempt running (or after 2 s), with `stop()` to end that shipper.
   */
  async function followUntilRunning(log: Buffer): Promise<{ stop(): Promise<void> }> {
    await writeFile(file, log);
    const stop = new AbortController();
    const running = new Shipper(home.options).follow(file, {
      signal: stop.signal,
      pollIntervalMs: 20,
    });
    for (let i = 0; i < 100 && (await home.catalog.get(key))?.state !== 'running'; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return {
      async stop() {
        stop.abort();
        await running;
      },
    };
  }

  it('ships a finished log byte for byte and records it as shipped with size and sha256', async () => {
    const log = content(1_000_000);
    await writeFile(file, log);
    const result = await new Shipper(home.options).shipFile(file);
    expect(result).toMatchObject({
      outcome: 'shipped',
      size: log.length,
      sha256: sha256(log),
      uploaded: log.length,
    });
    expect(await digestStored(home.store, key)).toEqual({ size: log.length, sha256: sha256(log) });
    expect(await home.catalog.get(key)).toMatchObject({
      state: 'shipped',
      size: log.length,
      sha256: sha256(log),
      storeUrl: home.store.url,
      relativePath: rel,
    });
  });

  it('treats shipping the same log again as a no-op', async () => {
    await writeFile(file, content(10_000));
    const shipper = new Shipper(home.options);
    await shipper.shipFile(file);
    const archived = await stat(join(home.dir, 'archive', ...rel.split('/')));
    const again = await shipper.shipFile(file);
    expect(again).toMatchObject({ outcome: 'already-shipped', uploaded: 0 });
    expect((await stat(join(home.dir, 'archive', ...rel.split('/')))).mtimeMs).toBe(
      archived.mtimeMs,
    );
  });

  it('resumes an interrupted ship from the committed offset and ends byte-identical', async () => {
    // A store without the one-pass upload() ships through its resumable writer.
    const options = { ...home.options, store: withoutUpload(home.store) };
    const log = content(2_000_000);
    await writeFile(file, log);
    await shipUntilAborted(options, file);
    const partial = await home.store.stat(key);
    expect(partial?.complete).toBe(false);
    expect(partial!.size).toBeGreaterThan(0);
    expect((await home.catalog.get(key))?.state).toBe('shipping');

    const second = await new Shipper(options).shipFile(file);
    expect(second.outcome).toBe('shipped');
    expect(second.uploaded).toBe(log.length - partial!.size);
    expect(await digestStored(home.store, key)).toEqual({ size: log.length, sha256: sha256(log) });
    expect((await home.catalog.get(key))?.state).toBe('shipped');
  });

  it('ships again from the start after an interrupted one-pass upload, byte-identical', async () => {
    const log = content(2_000_000);
    await writeFile(file, log);
    await shipUntilAborted(home.options, file);
    expect((await home.store.stat(key))?.complete).not.toBe(true);

    const second = await new Shipper(home.options).shipFile(file);
    expect(second).toMatchObject({ outcome: 'shipped', uploaded: log.length });
    expect(await digestStored(home.store, key)).toEqual({ size: log.length, sha256: sha256(log) });
  });

  it('finishes the job when a crash came after the store was complete but before the catalog knew', async () => {
    const log = content(300_000);
    await writeFile(file, log);
    const writer = await home.store.openWriter(key);
    await writer.append(log);
    await writer.finish({ size: log.length, sha256: sha256(log) });

    const result = await new Shipper(home.options).shipFile(file);
    expect(result).toMatchObject({ outcome: 'shipped', uploaded: 0 });
    expect((await home.catalog.get(key))?.state).toBe('shipped');
  });

  it('deletes the local copy only when configured, and only after verification', async () => {
    await writeFile(file, content(50_000));
    await new Shipper(home.options).shipFile(file);
    await expect(stat(file)).resolves.toBeDefined();

    const other = keyOf({ tryNumber: 2 });
    const otherFile = join(home.base, ...template.render(other).split('/'));
    await writeFile(otherFile, content(50_000, 3));
    const result = await new Shipper({ ...home.options, deleteLocalCopy: true }).shipFile(
      otherFile,
    );
    expect(result.deletedLocalCopy).toBe(true);
    await expect(stat(otherFile)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await home.catalog.get(other))?.state).toBe('shipped');
  });

  it('refuses to replace an archived log with different content, and keeps the local copy', async () => {
    await writeFile(file, content(20_000));
    await new Shipper(home.options).shipFile(file);
    await writeFile(file, content(20_000, 11));
    const shipping = new Shipper({ ...home.options, deleteLocalCopy: true }).shipFile(file);
    await expect(shipping).rejects.toBeInstanceOf(ConflictError);
    await expect(readFile(file)).resolves.toEqual(content(20_000, 11));
  });

  for (const [how, archiveOf] of [
    ['one-pass upload', (s: LogStore) => s],
    ['writer', withoutUpload],
  ] as const) {
    it(`replaces the archived copy of a log that only grew since it was shipped (${how})`, async () => {
      const first = content(30_000);
      await writeFile(file, first);
      await new Shipper({ ...home.options, store: archiveOf(home.store) }).shipFile(file);
      const grown = Buffer.concat([first, content(5_000, 3)]);
      await writeFile(file, grown);
      const result = await new Shipper({ ...home.options, store: archiveOf(home.store) }).shipFile(
        file,
      );
      expect(result).toMatchObject({
        outcome: 'shipped',
        size: grown.length,
        replacedSize: first.length,
      });
      expect(await digestStored(home.store, key)).toEqual({
        size: grown.length,
        sha256: sha256(grown),
      });
      expect(await home.catalog.get(key)).toMatchObject({ state: 'shipped', size: grown.length });
    });
  }

  it('records the exit code the completion marker holds', async () => {
    await writeFile(file, content(100));
    await writeFile(
      `${file}.done`,
      '{"state":"failed","exitCode":137,"finishedAt":"2024-01-01T00:00:00Z"}\n',
    );
    await new Shipper(home.options).shipFile(file);
    expect((await home.catalog.get(key))?.exitCode).toBe(137);
  });

  it('while another process ships the attempt, a ship told not to wait fails with AttemptBusyError', async () => {
    const other = await followUntilRunning(content(1000));
    await expect(new Shipper(home.options).shipFile(file, { lock: 'fail' })).rejects.toBeInstanceOf(
      AttemptBusyError,
    );
    await other.stop();
  });

  it('a ship that waits for the attempt’s lock runs once the other shipper is done', async () => {
    const other = await followUntilRunning(content(1000));
    const waiting = new Shipper(home.options).shipFile(file);
    await new Promise((r) => setTimeout(r, 200));
    await other.stop();
    expect(await waiting).toMatchObject({ outcome: 'shipped', size: 1000 });
  });

  it('ships every attempt log found under a folder and ignores other files', async () => {
    await writeFile(file, content(1000));
    const mapped = keyOf({ taskId: 'fan_out', mapIndex: 4 });
    const mappedFile = join(home.base, ...template.render(mapped).split('/'));
    await mkdir(dirname(mappedFile), { recursive: true });
    await writeFile(mappedFile, content(2000));
    await writeFile(join(home.base, 'README.txt'), 'not a log');
    const results = [];
    for await (const r of new Shipper(home.options).ship([home.base])) results.push(r);
    expect(results.map((r) => r.relativePath).sort()).toEqual(
      [rel, template.render(mapped)].sort(),
    );
  });

  it('rejects a path outside the base log folder', async () => {
    const outside = join(home.dir, 'elsewhere.log');
    await writeFile(outside, 'x');
    await expect(new Shipper(home.options).shipFile(outside)).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });

  it('ships an empty log', async () => {
    await writeFile(file, '');
    const result = await new Shipper(home.options).shipFile(file);
    expect(result).toMatchObject({ outcome: 'shipped', size: 0 });
    expect(await home.store.stat(key)).toMatchObject({ size: 0, complete: true });
  });

  describe('follow (a running attempt)', () => {
    const until = async (cond: () => Promise<boolean>) => {
      for (let i = 0; i < 1500 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 20));
      expect(await cond()).toBe(true);
    };

    it('makes new bytes readable in the store while the attempt runs, then finishes it', async () => {
      await writeFile(file, 'line 1\n');
      const following = new Shipper(home.options).follow(file, {
        flushIntervalMs: 20,
        pollIntervalMs: 10,
      });

      await until(async () => (await home.store.stat(key))?.size === 7);
      expect(await home.store.stat(key)).toMatchObject({ complete: false });
      expect((await home.catalog.get(key))?.state).toBe('running');

      await appendFile(file, 'line 2 é\nno newline at the end');
      await until(async () => (await home.store.stat(key))?.size === (await stat(file)).size);
      await writeFile(`${file}.done`, '');
      const result = await following;
      const log = await readFile(file);
      expect(result).toMatchObject({ outcome: 'shipped', size: log.length, sha256: sha256(log) });
      expect(await digestStored(home.store, key)).toEqual({
        size: log.length,
        sha256: sha256(log),
      });
      expect((await home.catalog.get(key))?.state).toBe('shipped');
    });

    it('flushes up to the last line end while a line is unfinished, and the rest one flush later', async () => {
      await writeFile(file, 'complete line\nunfinished é');
      const following = new Shipper(home.options).follow(file, {
        flushIntervalMs: 1000,
        pollIntervalMs: 10,
      });
      await until(async () => ((await home.store.stat(key))?.size ?? 0) > 0);
      expect((await home.store.stat(key))?.size).toBe(Buffer.byteLength('complete line\n'));
      const size = (await stat(file)).size;
      await until(async () => (await home.store.stat(key))?.size === size);
      await writeFile(`${file}.done`, '');
      expect(await following).toMatchObject({ outcome: 'shipped', size });
    });

    it('stops on its signal with every byte read so far flushed, and a later run resumes', async () => {
      const log = content(300_000);
      await writeFile(file, log.subarray(0, 100_000));
      const stop = new AbortController();
      const following = new Shipper(home.options).follow(file, {
        signal: stop.signal,
        flushIntervalMs: 60_000,
        pollIntervalMs: 10,
      });
      await new Promise((r) => setTimeout(r, 100));
      stop.abort();
      expect(await following).toMatchObject({ outcome: 'stopped', committedOffset: 100_000 });
      expect(await home.store.stat(key)).toMatchObject({ size: 100_000, complete: false });

      await appendFile(file, log.subarray(100_000));
      await writeFile(`${file}.done`, '');
      const resumed = await new Shipper(home.options).follow(file, { pollIntervalMs: 10 });
      expect(resumed).toMatchObject({ outcome: 'shipped', size: log.length });
      expect(await digestStored(home.store, key)).toEqual({
        size: log.length,
        sha256: sha256(log),
      });
    });
  });
});
