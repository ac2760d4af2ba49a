import { describe, expect, it } from 'vitest';
import { closedAfterEach, key, logPath, sha256, startFixture } from './fixture.js';

describe('following an attempt whose writer is gone', () => {
  const start = closedAfterEach(startFixture);

  it('a running attempt whose heartbeat stopped is recorded abandoned; followers get the archive, an abandoned event, then the end', async () => {
    const f = await start({ deps: { live: { staleAfterMs: 300, pollIntervalMs: 20 } } });
    const k = key();
    const bytes = Buffer.from('flushed before the worker died\n');
    await f.writeRunning(k, bytes);
    await f.catalog.upsert(k, {
      relativePath: f.pathTemplate.render(k),
      heartbeatAt: new Date(Date.now() - 60_000),
    });
    const res = await fetch(`${f.url}${logPath(k, 'follow=true')}`, {
      headers: { accept: 'application/x-ndjson' },
    });
    const lines = (await res.text())
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([
      { offset: 0, text: 'flushed before the worker died\n' },
      { event: 'abandoned', offset: bytes.length },
      { offset: bytes.length, eof: true, complete: false },
    ]);
    expect((await f.catalog.get(k))?.state).toBe('abandoned');
  });

  it('a running attempt with a fresh heartbeat is followed until it ends', async () => {
    const f = await start({ deps: { live: { staleAfterMs: 60_000, pollIntervalMs: 20 } } });
    const k = key();
    const writer = await f.writeRunning(k, Buffer.from('one\n'));
    await f.catalog.upsert(k, { relativePath: f.pathTemplate.render(k), heartbeatAt: new Date() });
    const body = fetch(`${f.url}${logPath(k, 'follow=true')}`).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 300));
    await writer.append(Buffer.from('two\n'));
    await writer.finish({ size: 8, sha256: sha256(Buffer.from('one\ntwo\n')) });
    expect(await body).toBe('one\ntwo\n');
    expect((await f.catalog.get(k))?.state).toBe('running');
  });
});
