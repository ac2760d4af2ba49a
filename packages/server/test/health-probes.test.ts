import { mkdir, rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { startAgentFixture } from './agent-fixture.js';
import { startFixture } from './fixture.js';

describe('the proxy’s /health/live and /health/ready', () => {
  it('answers live even while the store is out, and ready only when catalog and store answer', async () => {
    const f = await startFixture();
    try {
      // The archive folder does not exist yet: the store is out.
      const live = await fetch(`${f.url}/health/live`);
      expect(live.status).toBe(200);
      expect(live.headers.get('cache-control')).toBe('no-store');
      expect(await live.json()).toEqual({ status: 'ok' });
      const notReady = await fetch(`${f.url}/health/ready`);
      expect(notReady.status).toBe(503);
      expect(((await notReady.json()) as { status: string }).status).toBe('unavailable');

      await mkdir(f.store.root, { recursive: true });
      const ready = await fetch(`${f.url}/health/ready`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toEqual({
        status: 'ok',
        catalog: { ok: true },
        store: { ok: true, url: f.store.url },
      });
    } finally {
      await f.close();
    }
  });
});

describe('the agent’s /health/live and /health/ready', () => {
  it('is ready while its base folder can be read, and says so without its path when not', async () => {
    const f = await startAgentFixture();
    try {
      expect((await fetch(`${f.url}/health/ready`)).status).toBe(200);
      await rm(f.base, { recursive: true });
      const live = await fetch(`${f.url}/health/live`);
      expect(live.status).toBe(200);
      const res = await fetch(`${f.url}/health/ready`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { status: string; baseLogFolder: { error: string } };
      expect(body.status).toBe('unavailable');
      expect(body.baseLogFolder.error).toContain('ENOENT');
      expect(JSON.stringify(body)).not.toContain(f.base);
    } finally {
      await f.close();
    }
  });

  it('is not ready when its archive does not answer', async () => {
    const f = await startAgentFixture({ archive: true });
    try {
      // The local archive's root does not exist: its ping fails.
      const res = await fetch(`${f.url}/health/ready`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { baseLogFolder: { ok: boolean }; store: { ok: boolean } };
      expect(body.baseLogFolder.ok).toBe(true);
      expect(body.store.ok).toBe(false);
    } finally {
      await f.close();
    }
  });
});
