import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { closedAfterEach } from './fixture.js';
import { decodeNdjson, handoverProperty, parseSse, sha } from './handover-property.js';
import { followPath, liveKey, startLiveFixture } from './live-fixture.js';

describe('following a live attempt through the proxy', () => {
  const start = closedAfterEach(startLiveFixture);

  for (const seed of [1, 2, 3]) {
    it(`every follower receives exactly the final log from its offset (seed ${seed})`, async () => {
      await handoverProperty(await start(), seed);
    });
  }

  it('a follower of an attempt whose agent dies gets the archive, a source-lost event, then the rest', async () => {
    const f = await start();
    const k = liveKey();
    await f.startRunning(k, 'before the crash\n');
    const res = await fetch(`${f.proxy.url}${followPath(k, 'offset=0')}`, {
      headers: { accept: 'application/x-ndjson' },
    });
    expect(res.headers.get('x-tasklog-live')).toBe('true');
    const body = res.text();
    await sleep(100);
    await f.killAgentHttp();
    for (let i = 0; i < 20; i++) {
      await f.append(k, `after the crash ${i}\n`);
      await sleep(5);
    }
    await f.finish(k);
    const decoded = decodeNdjson(await body, 0);
    const final = await readFile(f.fileOf(k));
    expect(decoded.events.map((e) => e.event)).toContain('source-lost');
    expect(decoded.eof).toEqual({ offset: final.length, complete: true });
    expect(sha(decoded.bytes)).toBe(sha(final));
  });

  it('an SSE follower that reconnects with Last-Event-ID continues exactly where it stopped', async () => {
    const f = await start();
    const k = liveKey();
    for (let i = 0; i < 50; i++) await f.append(k, `line ${i}\n`);
    await f.waitRunning(k);
    const controller = new AbortController();
    const first = await fetch(`${f.proxy.url}${followPath(k, 'offset=0')}`, {
      headers: { accept: 'text/event-stream' },
      signal: controller.signal,
    });
    expect(first.headers.get('content-type')).toContain('text/event-stream');
    // Read until some log events arrived, then drop the connection mid-stream.
    const reader = first.body!.getReader();
    let text = '';
    while (!parseSse(text).some((e) => e.event === 'log')) {
      const { value } = await reader.read();
      text += Buffer.from(value!).toString('utf8');
    }
    controller.abort();
    const complete = text.slice(0, text.lastIndexOf('\n\n') + 2);
    const before = parseSse(complete).filter((e) => e.event === 'log');
    const lastId = before.at(-1)!.id!;
    for (let i = 50; i < 80; i++) await f.append(k, `line ${i}\n`);
    await f.finish(k);

    const second = await fetch(`${f.proxy.url}${followPath(k, '')}`, {
      headers: { accept: 'text/event-stream', 'last-event-id': lastId },
    });
    const after = parseSse(await second.text());
    expect(after.at(-1)!.event).toBe('eof');
    const text1 = before.map((e) => JSON.parse(e.data!).text).join('');
    const text2 = after
      .filter((e) => e.event === 'log')
      .map((e) => JSON.parse(e.data!).text)
      .join('');
    expect(Buffer.byteLength(text1)).toBe(Number(lastId));
    const final = await readFile(f.fileOf(k), 'utf8');
    expect(text1 + text2).toBe(final);
  });

  it('twenty followers of one running attempt share one agent connection', async () => {
    const f = await start();
    const k = liveKey();
    await f.startRunning(k, 'start\n');
    const bodies = Array.from({ length: 20 }, () =>
      fetch(`${f.proxy.url}${followPath(k, 'offset=0')}`).then((r) => r.arrayBuffer()),
    );
    // Every follower is subscribed once each has received the first line through the hub.
    for (let i = 0; i < 20 && f.agentLogRequests() === 0; i++) await sleep(20);
    await sleep(200);
    for (let i = 0; i < 30; i++) await f.append(k, `line ${i}\n`);
    await f.finish(k);
    const final = await readFile(f.fileOf(k));
    for (const b of await Promise.all(bodies)) expect(sha(Buffer.from(b))).toBe(sha(final));
    expect(f.agentLogRequests()).toBe(1);
    expect(f.app.liveHub?.upstreamsOpened).toBe(1);
  });

  it('a finished attempt followed with NDJSON is the archived log and a complete eof record', async () => {
    const f = await start();
    const k = liveKey(2);
    await f.startRunning(k, 'only line\n');
    await f.finish(k);
    for (;;) {
      const r = await f.catalog.get(k);
      if (r?.state === 'shipped') break;
      await sleep(20);
    }
    const res = await fetch(`${f.proxy.url}${followPath(k, 'offset=5')}`, {
      headers: { accept: 'application/x-ndjson' },
    });
    const decoded = decodeNdjson(await res.text(), 5);
    expect(decoded.bytes.toString()).toBe('line\n');
    expect(decoded.eof).toEqual({ offset: 10, complete: true });
  });
});
