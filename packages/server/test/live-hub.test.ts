import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { LaggingError, LiveHub } from '../src/live/live-hub.js';
import { closedAfterEach } from './fixture.js';
import { followPath, liveKey, startLiveFixture } from './live-fixture.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const line = (i: number) => `${String(i).padStart(6, '0')} ${'y'.repeat(1000)}\n`;

describe('LiveHub', () => {
  const start = closedAfterEach(startLiveFixture);

  it('cuts off a follower whose next byte has left the ring, without slowing the others', async () => {
    const f = await start();
    const k = liveKey();
    await f.startRunning(k, 'start\n');
    const record = (await f.catalog.get(k))!;
    const hub = new LiveHub({ keys: f.keys, ringBytes: 16 * 1024 });
    const stop = new AbortController();
    const sub = {
      relativePath: record.relativePath,
      agentUrl: record.agentUrl!,
      signal: stop.signal,
    };
    try {
      const slow = hub.subscribe({ ...sub, offset: 0 });
      expect((await slow.next()).done).toBe(false);
      const fast = hub.subscribe({ ...sub, offset: 0 });
      const target = 'start\n'.length + 200 * line(0).length;
      // A generator runs on its first next(): that is when it joins the hub.
      let fastBytes = (await fast.next()).value?.length ?? 0;
      const reading = (async () => {
        while (fastBytes < target) {
          const r = await fast.next();
          if (r.done) break;
          fastBytes += r.value.length;
        }
      })();
      for (let i = 0; i < 200; i++) await f.append(k, line(i));
      await reading;
      expect(fastBytes).toBe(target);
      await expect(slow.next()).rejects.toBeInstanceOf(LaggingError);
      expect(hub.upstreamsOpened).toBe(1);
    } finally {
      stop.abort();
      hub.close();
    }
  });

  it('a follower joining behind the ring reads the archive first and still gets every byte', async () => {
    const f = await start({ ringBytes: 64 * 1024 });
    const k = liveKey();
    await f.startRunning(k, 'start\n');
    const early = fetch(`${f.proxy.url}${followPath(k, 'offset=0')}`).then((r) => r.arrayBuffer());
    await sleep(100);
    for (let i = 0; i < 200; i++) await f.append(k, line(i));
    await sleep(100);
    const late = fetch(`${f.proxy.url}${followPath(k, 'offset=0')}`).then((r) => r.arrayBuffer());
    await sleep(100);
    for (let i = 200; i < 220; i++) await f.append(k, line(i));
    await f.finish(k);
    const final = await readFile(f.fileOf(k));
    expect(sha(Buffer.from(await early))).toBe(sha(final));
    expect(sha(Buffer.from(await late))).toBe(sha(final));
  });

  it('without signing keys, follow reads the archive until the attempt is complete', async () => {
    const f = await start({ liveEnabled: false });
    const k = liveKey();
    await f.startRunning(k, 'start\n');
    const res = await fetch(`${f.proxy.url}${followPath(k, 'offset=0')}`);
    expect(res.headers.get('x-tasklog-live')).toBe('false');
    const body = res.arrayBuffer();
    for (let i = 0; i < 20; i++) await f.append(k, line(i));
    await f.finish(k);
    const final = await readFile(f.fileOf(k));
    expect(sha(Buffer.from(await body))).toBe(sha(final));
    expect(f.agentLogRequests()).toBe(0);
  });
});
