import { mkdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { startFixture } from './fixture.js';

describe('GET /health', () => {
  it('is ok when the catalog and the store answer', async () => {
    const f = await startFixture();
    try {
      await mkdir(f.store.root, { recursive: true });
      const res = await fetch(`${f.url}/health`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        status: 'ok',
        catalog: { ok: true },
        store: { ok: true, url: f.store.url },
      });
    } finally {
      await f.close();
    }
  });

  it('is 503 with the catalog error when the catalog is closed', async () => {
    const f = await startFixture();
    try {
      await mkdir(f.store.root, { recursive: true });
      await f.catalog.close();
      const res = await fetch(`${f.url}/health`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as {
        status: string;
        catalog: { ok: boolean; error: string };
        store: { ok: boolean };
      };
      expect(body.status).toBe('unavailable');
      expect(body.catalog.ok).toBe(false);
      expect(body.catalog.error).toEqual(expect.any(String));
      expect(body.store.ok).toBe(true);
    } finally {
      await f.close();
    }
  });

  it('is 503 with the store error when the archive folder is missing', async () => {
    const f = await startFixture();
    try {
      const res = await fetch(`${f.url}/health`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { store: { ok: boolean; error: string; url: string } };
      expect(body.store).toEqual({ ok: false, error: expect.any(String), url: f.store.url });
    } finally {
      await f.close();
    }
  });
});
