import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startAgentFixture } from './agent-fixture.js';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('agent over TLS', () => {
  it.skipIf(!hasOpenssl())('serves over HTTPS when given a certificate and key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tasklog-agent-tls-'));
    try {
      const [certFile, keyFile] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
          .concat(['-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=agent'])
          .concat(['-addext', 'subjectAltName=IP:127.0.0.1']),
        { stdio: 'ignore' },
      );
      const cert = await readFile(certFile, 'utf8');
      const agent = await startAgentFixture({
        tls: { cert, key: await readFile(keyFile, 'utf8') },
      });
      try {
        expect(agent.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
        const body = await new Promise<string>((resolve, reject) => {
          https
            .get(`${agent.url}/health`, { ca: cert, agent: false }, (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (s: string) => {
                text += s;
              });
              res.on('end', () => resolve(text));
            })
            .on('error', reject);
        });
        expect(JSON.parse(body)).toEqual({ status: 'ok' });
      } finally {
        await agent.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
