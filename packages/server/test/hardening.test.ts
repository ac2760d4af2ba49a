import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { closedAfterEach, key, logPath, rawGet, startFixture } from './fixture.js';

describe('hardening of the proxy', () => {
  const start = closedAfterEach(startFixture);

  it('sends nosniff and a strict CSP on every response, logs and errors alike', async () => {
    const f = await start();
    await f.archive(key(), Buffer.from('<script>alert(1)</script>\n'));
    for (const path of [
      logPath(key()),
      logPath(key({ taskId: 'missing' })),
      '/nowhere',
      '/health',
    ]) {
      const res = await fetch(f.url + path);
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(res.headers.get('content-security-policy'), path).toContain("default-src 'none'");
    }
  });

  it('refuses a request for a host name it does not answer to (DNS rebinding)', async () => {
    const f = await start({ deps: { allowedHosts: ['localhost', '127.0.0.1'] } });
    await f.archive(key(), Buffer.from('secret log\n'));
    const rebound = await rawGet(f.url, logPath(key()), { host: 'attacker.example:8794' });
    expect(rebound.status).toBe(421);
    expect(rebound.body.toString()).not.toContain('secret log');
    const local = await rawGet(f.url, logPath(key()), { host: `127.0.0.1:${new URL(f.url).port}` });
    expect(local.status).toBe(200);
  });

  it('answers the health probes whatever the Host (Kubernetes sends the pod address), and nothing else', async () => {
    const f = await start({ deps: { allowedHosts: ['localhost'] } });
    for (const path of ['/health/live', '/health/ready', '/health']) {
      const res = await rawGet(f.url, path, { host: '10.1.2.3:8794' });
      expect(res.status, path).not.toBe(421);
      expect(JSON.parse(res.body.toString()).status, path).toEqual(expect.any(String));
    }
    expect((await rawGet(f.url, '/api/v1/attempts', { host: '10.1.2.3:8794' })).status).toBe(421);
  });

  it('cuts off a follower that stopped reading, and frees its place', async () => {
    const f = await start({
      deps: {
        sendTimeoutMs: 500,
        maxFollowersPerAttempt: 1,
        live: { pollIntervalMs: 20 },
      },
    });
    const k = key();
    const writer = await f.writeRunning(k, Buffer.alloc(1 << 20, 'x\n'));
    // A client that sends its request and never reads: the kernel buffers fill, then nothing moves.
    const { port } = new URL(f.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    socket.pause();
    socket.write(`GET ${logPath(k, 'follow=true')} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    for (let i = 0; i < 40; i++) {
      await writer.append(Buffer.alloc(1 << 20, 'y\n'));
      await writer.flush();
    }
    // Once the proxy has cut the reader that stopped, its place is free: another follower of the
    // same attempt (at most one allowed) is served.
    let status = 503;
    for (let i = 0; i < 100 && status === 503; i++) {
      await sleep(100);
      const res = await fetch(f.url + logPath(k, 'follow=true'), {
        signal: AbortSignal.timeout(5000),
      });
      status = res.status;
      await res.body?.cancel();
    }
    expect(status).toBe(200);
    socket.destroy();
  });

  it('refuses one follower too many of an attempt with 503', async () => {
    const f = await start({ deps: { maxFollowersPerAttempt: 2, live: { pollIntervalMs: 20 } } });
    const k = key();
    await f.writeRunning(k, Buffer.from('running\n'));
    const controllers = [new AbortController(), new AbortController()];
    const open = await Promise.all(
      controllers.map((c) => fetch(f.url + logPath(k, 'follow=true'), { signal: c.signal })),
    );
    expect(open.map((r) => r.status)).toEqual([200, 200]);
    const third = await fetch(f.url + logPath(k, 'follow=true'));
    expect(third.status).toBe(503);
    for (const c of controllers) c.abort();
  });
});
