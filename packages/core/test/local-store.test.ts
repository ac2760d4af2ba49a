import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  AbortedError,
  type AttemptKey,
  assertRealPathInside,
  attemptKey,
  BackendUnavailableError,
  ConflictError,
  InvalidInputError,
  LocalStore,
  NotFoundError,
  openStore,
  PathTemplate,
  resolveInside,
} from '@tasklog/core';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { recoverShip, runShipChild, type ShipJob } from '../../../test/support/killable-ship.js';

const k = attemptKey({
  dagId: 'etl',
  runId: 'scheduled__2024-01-01T00:00:00+00:00',
  taskId: 'load',
  tryNumber: 1,
});
const REL = 'dag_id=etl/run_id=scheduled__2024-01-01T00:00:00+00:00/task_id=load/attempt=1.log';

let dir: string;
let root: string;
let outside: string;
let store: LocalStore;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tasklog-local-'));
  root = path.join(dir, 'archive');
  outside = path.join(dir, 'outside');
  await mkdir(root);
  await mkdir(outside);
  store = new LocalStore({ root });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function readAll(s: LocalStore, key: AttemptKey, offset = 0): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of s.read(key, { offset })) pieces.push(Buffer.from(piece.bytes));
  return Buffer.concat(pieces);
}

async function listAll(s: LocalStore, filter: Partial<AttemptKey> = {}): Promise<AttemptKey[]> {
  const out: AttemptKey[] = [];
  for await (const key of s.list(filter)) out.push(key);
  return out;
}

async function writeLog(key: AttemptKey, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  const writer = await store.openWriter(key);
  await writer.append(bytes);
  await writer.finish({ size: bytes.length, sha256: sha256(bytes) });
}

const chunkDir = () => path.join(root, `${REL}.chunks`);
const chunk = (offset: number) => `${String(offset).padStart(20, '0')}.chunk`;

describe('LocalStore layout', () => {
  it("writes a finished log as one file at Airflow's path", async () => {
    await writeLog(k, 'hello\n');
    expect(await readFile(path.join(root, REL), 'utf8')).toBe('hello\n');
  });

  it('writes each flush of a running attempt as a chunk named by its zero-padded start offset', async () => {
    const writer = await store.openWriter(k);
    await writer.append(Buffer.from('12345'));
    await writer.flush();
    await writer.append(Buffer.from('678'));
    await writer.flush();
    expect((await readdir(chunkDir())).sort()).toEqual([chunk(0), chunk(5)]);
    expect(await readFile(path.join(chunkDir(), chunk(5)), 'utf8')).toBe('678');
  });

  it('makes a running attempt with no bytes yet visible to stat and list', async () => {
    await store.openWriter(k);
    expect(await store.stat(k)).toMatchObject({ size: 0, complete: false });
    expect(await listAll(store)).toEqual([k]);
    expect(await readAll(store, k)).toHaveLength(0);
  });

  it('removes the chunk folder once the log is finished', async () => {
    await writeLog(k, 'done\n');
    expect(existsSync(chunkDir())).toBe(false);
  });

  it('leaves no temp files behind after writing', async () => {
    const writer = await store.openWriter(k);
    await writer.append(Buffer.from('a'));
    await writer.flush();
    expect(await readdir(chunkDir())).toEqual([chunk(0)]);
    await writer.finish({ size: 1, sha256: sha256(Buffer.from('a')) });
    expect(await readdir(path.dirname(path.join(root, REL)))).toEqual(['attempt=1.log']);
  });

  it('flushes by itself once the buffer reaches chunkSize', async () => {
    const small = new LocalStore({ root, chunkSize: 10 });
    const writer = await small.openWriter(k);
    for (let i = 0; i < 5; i++) await writer.append(Buffer.from('abcde'));
    expect(writer.committedOffset).toBe(20);
    expect(writer.offset).toBe(25);
    expect((await readdir(chunkDir())).sort()).toEqual([chunk(0), chunk(10)]);
  });

  it('reads in pieces of at most 64 KiB', async () => {
    await writeLog(k, 'x'.repeat(200 * 1024));
    const sizes: number[] = [];
    for await (const piece of store.read(k)) sizes.push(piece.bytes.length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * 1024);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(200 * 1024);
  });
});

describe('LocalStore recovery', () => {
  it('ignores temp files when reading, stating and listing', async () => {
    const writer = await store.openWriter(k);
    await writer.append(Buffer.from('real'));
    await writer.flush();
    await writeFile(path.join(chunkDir(), '.tmp-deadbeef'), 'garbage');
    await writeFile(path.join(path.dirname(chunkDir()), '.tmp-cafe'), 'garbage');
    expect((await readAll(store, k)).toString()).toBe('real');
    expect(await store.stat(k)).toMatchObject({ size: 4, complete: false });
    expect(await listAll(store)).toEqual([k]);
  });

  it('deletes stray temp files in the chunk folder when a writer opens', async () => {
    await store.openWriter(k);
    await writeFile(path.join(chunkDir(), '.tmp-deadbeef'), 'half a chunk');
    await store.openWriter(k);
    expect(await readdir(chunkDir())).toEqual([]);
  });

  it('stops the committed log at a gap between chunks and drops what lies past it', async () => {
    await mkdir(chunkDir(), { recursive: true });
    await writeFile(path.join(chunkDir(), chunk(0)), '0123456789');
    await writeFile(path.join(chunkDir(), chunk(15)), 'after a gap');
    expect(await store.stat(k)).toMatchObject({ size: 10, complete: false });
    expect((await readAll(store, k)).toString()).toBe('0123456789');
    const writer = await store.openWriter(k);
    expect(writer.committedOffset).toBe(10);
    expect(await readdir(chunkDir())).toEqual([chunk(0)]);
  });

  it('drops a chunk that overlaps the previous one', async () => {
    await mkdir(chunkDir(), { recursive: true });
    await writeFile(path.join(chunkDir(), chunk(0)), '0123456789');
    await writeFile(path.join(chunkDir(), chunk(5)), 'overlapping');
    const writer = await store.openWriter(k);
    expect(writer.committedOffset).toBe(10);
    expect(await readdir(chunkDir())).toEqual([chunk(0)]);
  });

  describe('with a finished log next to leftover chunks (crash between rename and cleanup)', () => {
    beforeEach(async () => {
      await writeLog(k, 'the final log\n');
      await mkdir(chunkDir());
      await writeFile(path.join(chunkDir(), chunk(0)), 'stale chunk bytes that differ\n');
    });

    it('reads the final file', async () => {
      expect((await readAll(store, k)).toString()).toBe('the final log\n');
    });

    it('stats the final file as complete', async () => {
      expect(await store.stat(k)).toMatchObject({ size: 14, complete: true });
    });

    it('lists the attempt once', async () => {
      expect(await listAll(store)).toEqual([k]);
    });

    it('refuses a new writer and removes the leftover chunks', async () => {
      await expect(store.openWriter(k)).rejects.toBeInstanceOf(ConflictError);
      expect(existsSync(chunkDir())).toBe(false);
    });

    it('deletes both', async () => {
      await store.delete(k);
      expect(existsSync(chunkDir())).toBe(false);
      expect(existsSync(path.join(root, REL))).toBe(false);
    });
  });

  it('fails a flush with NotFoundError when the attempt was deleted under the writer', async () => {
    const writer = await store.openWriter(k);
    await store.delete(k);
    await writer.append(Buffer.from('late'));
    await expect(writer.flush()).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.stat(k)).toBeUndefined();
  });
});

describe('LocalStore.sweep', () => {
  const folder = () => path.dirname(path.join(root, REL));
  const temp = (name: string) => `.tmp-${name}.${randomBytes(8).toString('hex')}`;

  it('removes the temp files killed writes of this log left beside it, and its chunk folder', async () => {
    await writeLog(k, 'the finished log\n');
    const mine = [temp('attempt=1.log'), temp('attempt=1.log')];
    const others = [temp('attempt=2.log'), temp('attempt=1.log.other')];
    for (const name of [...mine, ...others]) await writeFile(path.join(folder(), name), 'half');
    await mkdir(chunkDir());
    await writeFile(path.join(chunkDir(), chunk(0)), 'stale chunk');
    await writeFile(path.join(chunkDir(), temp(chunk(0))), 'half a chunk');

    await store.sweep(k);
    expect((await readdir(folder())).sort()).toEqual([...others, 'attempt=1.log'].sort());
    expect((await readAll(store, k)).toString()).toBe('the finished log\n');
  });

  it('leaves the temp files of a log that is not finished', async () => {
    const writer = await store.openWriter(k);
    await writer.append(Buffer.from('running'));
    await writer.flush();
    const stale = temp('attempt=1.log');
    await writeFile(path.join(folder(), stale), 'half');
    await store.sweep(k);
    expect(await readdir(folder())).toContain(stale);
    expect(await store.stat(k)).toMatchObject({ size: 7, complete: false });
  });

  it('names the temps of a file name too long to take a suffix by its sha256, and sweeps them', async () => {
    const long = new LocalStore({
      root,
      pathTemplate: new PathTemplate(
        'dag_id={dag_id}/run_id={run_id}/{task_id}[.{map_index}]-{try_number}.log',
      ),
    });
    const key = attemptKey({ ...k, taskId: 't'.repeat(240) });
    const name = `${'t'.repeat(240)}-1.log`;
    const content = Buffer.from('a log with a long name\n');
    const file = path.join(dir, 'long.log');
    await writeFile(file, content);
    await long.upload(key, { path: file, size: content.length, sha256: sha256(content) });
    const logFolder = path.join(root, 'dag_id=etl', `run_id=${k.runId}`);
    const stale = temp(createHash('sha256').update(name).digest('hex'));
    await writeFile(path.join(logFolder, stale), 'half');

    await long.sweep(key);
    expect(await readdir(logFolder)).toEqual([name]);
  });
});

/**
 * A child process stores a 48 MiB log and is SIGKILLed at k/N of the time the call takes. What it
 * leaves is its temp file, named after the log; the next run stores the log and sweeps, and the
 * folder then holds the log alone.
 */
describe.each([
  ['upload', 5],
  ['finish', 3],
] as const)('LocalStore, a process killed inside %s()', (mode, kills) => {
  let home: string;
  let calibration: number;
  const content = Buffer.alloc(48 * 1024 * 1024, 'a log line of the killed run\n');

  const job = (tryNumber: number): ShipJob => ({
    store: { kind: 'local', root: path.join(home, 'archive') },
    key: attemptKey({ ...k, taskId: mode, tryNumber }),
    mode,
    file: path.join(home, 'killed.log'),
    size: content.length,
    sha256: sha256(content),
    journal: path.join(home, `journal-${tryNumber}.json`),
    pieceBytes: 8 * 1024 * 1024,
  });

  beforeAll(async () => {
    home = await mkdtemp(path.join(tmpdir(), 'tasklog-local-killed-'));
    await writeFile(job(1).file, content);
    const run = await runShipChild(job(1000));
    expect(run.done).toBe(true);
    calibration = run.ms;
    return () => rm(home, { recursive: true, force: true });
  });

  for (let n = 1; n <= kills; n++) {
    it(`leaves only temps named after the log at ${n}/${kills} of the call, which the next run sweeps`, async () => {
      const j = job(n);
      await runShipChild(j, (calibration * n) / kills);
      const logFolder = path.join(
        home,
        'archive',
        'dag_id=etl',
        `run_id=${k.runId}`,
        `task_id=${mode}`,
      );
      const files = async () =>
        (await readdir(logFolder).catch(() => [] as string[])).filter((f) =>
          f.includes(`attempt=${n}.log`),
        );
      for (const name of await files()) {
        expect(name).toMatch(
          new RegExp(`^(\\.tmp-)?attempt=${n}\\.log(\\.chunks|\\.[0-9a-f]{16})?$`),
        );
      }

      const archive = new LocalStore({ root: path.join(home, 'archive') });
      await recoverShip(archive, j);
      expect(await files()).toEqual([`attempt=${n}.log`]);
      expect(sha256(await readFile(path.join(logFolder, `attempt=${n}.log`)))).toBe(j.sha256);
    });
  }
});

describe('LocalStore refuses to leave its root', () => {
  it('rejects a key whose fields would be path segments of their own', async () => {
    for (const dagId of ['..', '.', 'a/b', 'a\\b', 'a\u0000b']) {
      const bad = { ...k, dagId } as AttemptKey;
      await expect(store.stat(bad)).rejects.toBeInstanceOf(InvalidInputError);
      await expect(store.openWriter(bad)).rejects.toBeInstanceOf(InvalidInputError);
      await expect(readAll(store, bad)).rejects.toBeInstanceOf(InvalidInputError);
    }
  });

  it('rejects list filters that are not valid key fields', async () => {
    await expect(listAll(store, { dagId: '../..' })).rejects.toBeInstanceOf(InvalidInputError);
  });

  describe('through a symlinked folder', () => {
    beforeEach(async () => {
      const secret = path.join(outside, REL.replace(/^dag_id=etl\//, ''));
      await mkdir(path.dirname(secret), { recursive: true });
      await writeFile(secret, 'secret\n');
      await symlink(outside, path.join(root, 'dag_id=etl'));
    });

    it('refuses to read', async () => {
      await expect(readAll(store, k)).rejects.toBeInstanceOf(InvalidInputError);
    });

    it('refuses to stat', async () => {
      await expect(store.stat(k)).rejects.toBeInstanceOf(InvalidInputError);
    });

    it('refuses to write', async () => {
      await expect(store.openWriter(k)).rejects.toBeInstanceOf(InvalidInputError);
      const inOutside = path.join(outside, `${REL.replace(/^dag_id=etl\//, '')}.chunks`);
      expect(existsSync(inOutside)).toBe(false);
    });

    it('refuses to delete and leaves the outside file alone', async () => {
      await expect(store.delete(k)).rejects.toBeInstanceOf(InvalidInputError);
      expect(existsSync(path.join(outside, REL.replace(/^dag_id=etl\//, '')))).toBe(true);
    });

    it('refuses to list below it', async () => {
      await expect(listAll(store, { dagId: 'etl' })).rejects.toBeInstanceOf(InvalidInputError);
    });

    it('does not follow it when listing everything', async () => {
      expect(await listAll(store)).toEqual([]);
    });
  });

  it('refuses to read a log file that is a symlink to a file outside', async () => {
    await writeFile(path.join(outside, 'passwd'), 'root:x:0:0\n');
    await mkdir(path.dirname(path.join(root, REL)), { recursive: true });
    await symlink(path.join(outside, 'passwd'), path.join(root, REL));
    await expect(readAll(store, k)).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('refuses to write through a dangling symlink', async () => {
    await mkdir(path.dirname(path.join(root, REL)), { recursive: true });
    await symlink(path.join(outside, 'not-yet'), `${path.join(root, REL)}.chunks`);
    await expect(store.openWriter(k)).rejects.toBeInstanceOf(InvalidInputError);
    expect(existsSync(path.join(outside, 'not-yet'))).toBe(false);
  });
});

describe('LocalStore errors', () => {
  it('names the attempt path relative to the root in NotFoundError', async () => {
    const err = await readAll(store, k).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain(REL);
    expect((err as Error).message).not.toContain(root);
  });

  it('maps other file system failures to BackendUnavailableError with the cause', async () => {
    const fileRoot = path.join(dir, 'a-file');
    await writeFile(fileRoot, '');
    const err = await new LocalStore({ root: fileRoot }).openWriter(k).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).cause).toBeDefined();
  });

  it('throws AbortedError from a read whose signal is aborted', async () => {
    await writeLog(k, 'x');
    const controller = new AbortController();
    controller.abort();
    await expect(
      (async () => {
        for await (const _ of store.read(k, { signal: controller.signal })) {
          // drain
        }
      })(),
    ).rejects.toBeInstanceOf(AbortedError);
  });

  it('rejects a relative root', () => {
    expect(() => new LocalStore({ root: 'relative/folder' })).toThrow(InvalidInputError);
  });

  it('answers ping for an existing folder and fails it for a missing one', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
    await expect(new LocalStore({ root: path.join(dir, 'missing') }).ping()).rejects.toBeInstanceOf(
      BackendUnavailableError,
    );
  });

  it('lists nothing when the root does not exist yet', async () => {
    expect(await listAll(new LocalStore({ root: path.join(dir, 'missing') }))).toEqual([]);
  });
});

describe('LocalStore URLs', () => {
  it('opens from a file:// URL and reports it back', () => {
    const s = LocalStore.fromUrl('file:///var/log/archive');
    expect(s.root).toBe('/var/log/archive');
    expect(s.url).toBe('file:///var/log/archive');
  });

  it('rejects URLs that do not name a local folder', () => {
    expect(() => LocalStore.fromUrl('file://server/share')).toThrow(InvalidInputError);
    expect(() => LocalStore.fromUrl('s3://bucket/prefix')).toThrow(InvalidInputError);
    expect(() => LocalStore.fromUrl('not a url')).toThrow(InvalidInputError);
  });

  it('is what openStore returns for a file: URL', async () => {
    const s = await openStore(`file://${root}`);
    expect(s).toBeInstanceOf(LocalStore);
    expect(s.url).toBe(`file://${root}`);
  });

  it('makes openStore open every supported scheme with its store, without connecting', async () => {
    const urls = [
      's3://bucket/prefix',
      'gs://bucket/prefix',
      'cloudwatch://arn:aws:logs:eu-west-1:123456789012:log-group:airflow',
      'elasticsearch+https://es.example:9200/logs',
      'elasticsearch+http://localhost:9200/logs',
      'stackdriver://airflow',
    ];
    const stores = await Promise.all(
      urls.map((url) => openStore(url, { gcs: { api_endpoint: 'http://127.0.0.1:9' } })),
    );
    expect(stores.map((s) => s.url.split(':')[0])).toEqual([
      's3',
      'gs',
      'cloudwatch',
      'elasticsearch+https',
      'elasticsearch+http',
      'stackdriver',
    ]);
    await Promise.all(stores.map((s) => s.close()));
  });

  it('makes openStore list the supported schemes for an unknown one', async () => {
    const err = await openStore('ftp://host/logs').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).toMatch(/file:.*s3:.*gs:/);
  });
});

describe('resolveInside', () => {
  it('joins a relative path below the root', () => {
    expect(resolveInside('/srv/logs', 'a/b=c:d/e.log')).toBe('/srv/logs/a/b=c:d/e.log');
  });

  it.each([
    ['an absolute path', '/etc/passwd'],
    ['a ".." segment', 'a/../../etc'],
    ['a NUL', 'a\u0000b'],
    ['a backslash', 'a\\..\\b'],
    ['the root itself', ''],
    ['a path resolving to the root', 'a/..'],
  ])('rejects %s', (_label, rel) => {
    expect(() => resolveInside('/srv/logs', rel)).toThrow(InvalidInputError);
  });

  it('allows names that merely start with two dots', () => {
    expect(resolveInside('/srv/logs', '..hidden')).toBe('/srv/logs/..hidden');
  });
});

describe('assertRealPathInside', () => {
  it('accepts a path that does not exist yet below the root', async () => {
    await expect(assertRealPathInside(root, path.join(root, 'a/b/c'))).resolves.toBeUndefined();
  });

  it('rejects a path through a symlink that leads out of the root', async () => {
    await symlink(outside, path.join(root, 'link'));
    await expect(assertRealPathInside(root, path.join(root, 'link/x'))).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });

  it('accepts a symlink that stays inside the root', async () => {
    await mkdir(path.join(root, 'real'));
    await symlink(path.join(root, 'real'), path.join(root, 'alias'));
    await expect(assertRealPathInside(root, path.join(root, 'alias/x'))).resolves.toBeUndefined();
  });
});
