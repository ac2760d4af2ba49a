import { existsSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  AbortedError,
  type AttemptKey,
  assertRealPathInside,
  BackendUnavailableError,
  InvalidInputError,
  LocalStore,
  NotFoundError,
  openStore,
  resolveInside,
} from '@tasklog/core';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  dir,
  k,
  listAll,
  outside,
  REL,
  readAll,
  root,
  store,
  useStorePerTest,
  writeLog,
} from './local-store-fixture.js';

// LocalStore's boundaries: it stays inside its root, maps its errors, opens from URLs; and the
// path checks it is built on.
useStorePerTest();

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
