import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadAgentTokenKeys } from '@tasklog/core';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentUrlPolicy } from '../src/index.js';
import { type Fixture, key, logPath, startFixture } from './fixture.js';

/** An HTTP server standing in for an agent (or a metadata server): it records what it is asked. */
async function recorder() {
  const requests: { path: string; authorization?: string }[] = [];
  const server = http.createServer((req, res) => {
    requests.push({ path: req.url ?? '', authorization: req.headers.authorization });
    res.end('SECRET from the recorder\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, requests, close: () => new Promise((r) => server.close(r)) };
}

describe('the proxy takes nothing from a catalog row as authority', () => {
  let f: Fixture | undefined;
  let rec: Awaited<ReturnType<typeof recorder>> | undefined;
  afterEach(async () => {
    await f?.close();
    await rec?.close();
    f = rec = undefined;
  });

  async function start(policy?: AgentUrlPolicy) {
    const keys = await loadAgentTokenKeys({
      algorithm: 'HS512',
      secret: randomBytes(64).toString('base64'),
    });
    f = await startFixture({
      deps: {
        agentTokenKeys: keys,
        agentUrlPolicy: policy,
        live: { pollIntervalMs: 20, agentRetryMs: 60_000, handoverTimeoutMs: 200 },
      },
    });
    return f;
  }

  async function followBriefly(fx: Fixture, k = key()): Promise<string> {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 1000);
    const res = await fetch(`${fx.url}${logPath(k, 'follow=true')}`, {
      headers: { accept: 'application/x-ndjson' },
      signal: controller.signal,
    });
    let text = '';
    try {
      for await (const piece of res.body!) text += Buffer.from(piece).toString();
    } catch {
      // aborted: what arrived until then is the answer
    }
    return text;
  }

  it('asks the agent for the path rendered from the key, whatever relative_path the row holds', async () => {
    const fx = await start();
    rec = await recorder();
    const k = key();
    const victim = key({ dagId: 'payroll', taskId: 'salaries' });
    await fx.writeRunning(k, Buffer.from('flushed\n'));
    await fx.catalog.upsert(k, {
      relativePath: fx.pathTemplate.render(victim),
      agentUrl: rec.url,
      heartbeatAt: new Date(),
    });
    await followBriefly(fx, k);
    expect(rec.requests.length).toBeGreaterThan(0);
    const asked = decodeURIComponent(rec.requests[0]!.path.split('?')[0]!);
    expect(asked).toBe(`/log/${fx.pathTemplate.render(k)}`);
  });

  it('never connects to, nor signs a token for, an agent URL outside agent.allowed_urls', async () => {
    const fx = await start(new AgentUrlPolicy(['10.0.0.0/8', 'https://*.workers.internal:8795']));
    rec = await recorder();
    const k = key();
    await fx.writeRunning(k, Buffer.from('from the archive\n'));
    await fx.catalog.upsert(k, {
      relativePath: fx.pathTemplate.render(k),
      agentUrl: rec.url,
      heartbeatAt: new Date(),
    });
    const body = await followBriefly(fx, k);
    expect(rec.requests).toEqual([]);
    expect(body).toContain('"source-lost"');
    expect(body).toContain('from the archive');
    expect(body).not.toContain('SECRET');
  });

  it('refuses metadata and link-local agent URLs whatever the allow-list says', () => {
    const open = new AgentUrlPolicy();
    const listed = new AgentUrlPolicy(['169.254.0.0/16', 'http://169.254.169.254']);
    for (const url of [
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd00:ec2::254]/',
      'http://[fe80::1]:8795/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://0.0.0.0:8795/',
    ]) {
      expect(() => open.check(url), url).toThrow();
      expect(() => listed.check(url), url).toThrow();
    }
    for (const url of ['file:///etc/passwd', 'http://user:pw@worker:8795/', 'gopher://x/']) {
      expect(() => open.check(url), url).toThrow();
    }
    expect(open.check('http://worker-7.internal:8795').hostname).toBe('worker-7.internal');
  });

  it('matches allowed origins with one host label per *', () => {
    const policy = new AgentUrlPolicy(['https://*.workers.internal:8795']);
    expect(() => policy.check('https://w1.workers.internal:8795')).not.toThrow();
    expect(() => policy.check('https://a.b.workers.internal:8795')).toThrow();
    expect(() => policy.check('http://w1.workers.internal:8795')).toThrow();
    expect(() => policy.check('https://w1.workers.internal.evil.com:8795')).toThrow();
  });
});
