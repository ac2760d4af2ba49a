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
import * as fx from './local-store-fixture.js';

// LocalStore's boundaries: it stays inside its root, maps its errors, opens from URLs; and the
// path checks it is built on.
fx.useStorePerTest();

describe('LocalStore refuses to leave its root', () => {
  it('rejects a key whose fields would be path segments of their own', async () => {
    for (const dagId of ['..', '.', 'a/b', 'a\\b', 'a\u0000b']) {
      const bad = { ...fx.k, dagId } as AttemptKey;
      await expect(fx.store.stat(bad)).rejects.toBeInstanceOf(InvalidInputError);
      await expect(fx.store.openWriter(bad)).rejects.toBeInstanceOf(InvalidInputError);
      await expect(fx.readAll(fx.store, bad)).rejects.toBeInstanceOf(InvalidInputError);
    }
  });

  it('rejects list filters that are not valid key fields', async () => {
    await expect(fx.listAll(fx.store, { dagId: '../..' })).rejects.toBeInstanceOf(
      InvalidInputError,
    );
  });

  describe('through a symlinked folder', () => {
    beforeEach(async () => {
      const secret = path.join(fx.outside, fx.REL.replace(/^dag_id=etl\//, ''));
      await mkdir(path.dirname(secret), { recursive: true });
      await writeFile(secret, 'secret\n');
      await symlink(fx.outside, path.join(fx.root, 'dag_id=etl'));
    });

    it('refuses to read', async () => {
      await expect(fx.readAll(fx.store, fx.k)).rejects.toBeInstanceOf(InvalidInputError);
    });

    it('refuses to stat', async () => {
      await expect(fx.store.stat(fx.k)).rejects.toBeInstanceOf(InvalidInputError);
    });

    it('refuses to write', async () => {
      await expect(fx.store.openWriter(fx.k)).rejects.toBeInstanceOf(InvalidInputError);
      const inOutside = path.join(fx.outside, `${fx.REL.replace(/^dag_id=etl\//, '')}.chunks`);
      expect(existsSync(inOutside)).toBe(false);
    });

    it('refuses to delete and leaves the outside file alone', async () => {
      await expect(fx.store.delete(fx.k)).rejects.toBeInstanceOf(InvalidInputError);
      expect(existsSync(path.join(fx.outside, fx.REL.replace(/^dag_id=etl\//, '')))).toBe(true);
    });

    it('refuses to list below it', async () => {
      await expect(fx.listAll(fx.store, { dagId: 'etl' })).rejects.toBeInstanceOf(
        InvalidInputError,
      );
    });

    it('does not follow it when listing everything', async () => {
      expect(await fx.listAll(fx.store)).toEqual([]);
    });
  });

  it('refuses to read a log file that is a symlink to a file outside', async () => {
    await writeFile(path.join(fx.outside, 'passwd'), 'root:x:0:0\n');
    await mkdir(path.dirname(path.join(fx.root, fx.REL)), { recursive: true });
    await symlink(path.join(fx.outside, 'passwd'), path.join(fx.root, fx.REL));
    await expect(fx.readAll(fx.store, fx.k)).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('refuses to write through a dangling symlink', async () => {
    await mkdir(path.dirname(path.join(fx.root, fx.REL)), { recursive: true });
    await symlink(path.join(fx.outside, 'not-yet'), `${path.join(fx.root, fx.REL)}.chunks`);
    await expect(fx.store.openWriter(fx.k)).rejects.toBeInstanceOf(InvalidInputError);
    expect(existsSync(path.join(fx.outside, 'not-yet'))).toBe(false);
  });
});

describe('LocalStore errors', () => {
  it('names the attempt path relative to the root in NotFoundError', async () => {
    const err = await fx.readAll(fx.store, fx.k).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain(fx.REL);
    expect((err as Error).message).not.toContain(fx.root);
  });

  it('maps other file system failures to BackendUnavailableError with the cause', async () => {
    const fileRoot = path.join(fx.dir, 'a-file');
    await writeFile(fileRoot, '');
    const err = await new LocalStore({ root: fileRoot }).openWriter(fx.k).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).cause).toBeDefined();
  });

  it('throws AbortedError from a read whose signal is aborted', async () => {
    await fx.writeLog(fx.k, 'x');
    const controller = new AbortController();
    controller.abort();
    await expect(
      (async () => {
        for await (const _ of fx.store.read(fx.k, { signal: controller.signal })) {
          // drain
        }
      })(),
    ).rejects.toBeInstanceOf(AbortedError);
  });

  it('rejects a relative root', () => {
    expect(() => new LocalStore({ root: 'relative/folder' })).toThrow(InvalidInputError);
  });

  it('answers ping for an existing folder and fails it for a missing one', async () => {
    await expect(fx.store.ping()).resolves.toBeUndefined();
    await expect(
      new LocalStore({ root: path.join(fx.dir, 'missing') }).ping(),
    ).rejects.toBeInstanceOf(BackendUnavailableError);
  });

  it('lists nothing when the root does not exist yet', async () => {
    expect(await fx.listAll(new LocalStore({ root: path.join(fx.dir, 'missing') }))).toEqual([]);
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
    const s = await openStore(`file://${fx.root}`);
    expect(s).toBeInstanceOf(LocalStore);
    expect(s.url).toBe(`file://${fx.root}`);
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
    await expect(
      assertRealPathInside(fx.root, path.join(fx.root, 'a/b/c')),
    ).resolves.toBeUndefined();
  });

  it('rejects a path through a symlink that leads out of the root', async () => {
    await symlink(fx.outside, path.join(fx.root, 'link'));
    await expect(
      assertRealPathInside(fx.root, path.join(fx.root, 'link/x')),
    ).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('accepts a symlink that stays inside the root', async () => {
    await mkdir(path.join(fx.root, 'real'));
    await symlink(path.join(fx.root, 'real'), path.join(fx.root, 'alias'));
    await expect(
      assertRealPathInside(fx.root, path.join(fx.root, 'alias/x')),
    ).resolves.toBeUndefined();
  });
});
