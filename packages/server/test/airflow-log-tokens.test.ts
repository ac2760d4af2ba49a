import { randomBytes } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { signAgentToken } from '@tasklog/core';
import { describe, expect, it } from 'vitest';
import { agentLogPath } from './agent-fixture.js';
import {
  agent,
  airflowPath,
  airflowToken,
  bytes,
  rel,
  serveOneLogPerTest,
  sha,
  startAirflowAgent,
} from './airflow-agent-fixture.js';
import { key, type RawResponse, rawGet } from './fixture.js';

// Airflow's tokens on the agent's log route: what it serves for them, the clock grace, what it
// refuses, and tasklog's own tokens beside them. Paths and files are in airflow-log-paths.test.ts.
describe('the agent as Airflow log server', () => {
  serveOneLogPerTest();

  it("answers an Airflow 2 token with exactly the file's bytes, as application/json", async () => {
    const res = await agent.get(
      airflowPath(rel),
      await airflowToken({ generation: 2, filename: rel }),
    );
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['content-length']).toBe(String(bytes.length));
    expect(sha(res.body)).toBe(sha(bytes));
  });

  it("answers an Airflow 3 token with exactly the file's bytes, as text/plain", async () => {
    const res = await agent.get(
      airflowPath(rel),
      await airflowToken({ generation: 3, filename: rel }),
    );
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.headers['content-length']).toBe(String(bytes.length));
    expect(sha(res.body)).toBe(sha(bytes));
  });

  it('sends a growing log as far as it was written when opened, with that Content-Length', async () => {
    const file = agent.fileOf(key());
    const written = [bytes];
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const piece = randomBytes(4096);
        written.push(piece);
        await appendFile(file, piece);
      }
    })();
    try {
      for (let i = 0; i < 5; i++) {
        const res = await agent.get(
          airflowPath(rel),
          await airflowToken({ generation: 3, filename: rel }),
        );
        const sofar = Buffer.concat(written);
        expect(res.status).toBe(200);
        expect(res.body.length).toBe(Number(res.headers['content-length']));
        expect(res.body.length).toBeGreaterThanOrEqual(bytes.length);
        expect(res.body.equals(sofar.subarray(0, res.body.length))).toBe(true);
      }
    } finally {
      writing = false;
      await writer;
    }
    const last = await agent.get(
      airflowPath(rel),
      await airflowToken({ generation: 2, filename: rel }),
    );
    expect(sha(last.body)).toBe(sha(Buffer.concat(written)));
  });

  it('answers a single byte range with 206, as Werkzeug and Starlette do', async () => {
    const res = await rawGet(agent.url, airflowPath(rel), {
      authorization: await airflowToken({ generation: 2, filename: rel }),
      range: 'bytes=100-199',
    });
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe(`bytes 100-199/${bytes.length}`);
    expect(res.body.equals(bytes.subarray(100, 200))).toBe(true);
  });

  describe('clock grace', () => {
    it.each([
      ['Airflow 3, expired 20 s ago, within the 30 s grace', 3, -50],
      ['Airflow 3, issued 20 s in the future', 3, 20],
      ["Airflow 2, expired 3 s ago, within JWTSigner's 5 s leeway", 2, -33],
      ['Airflow 2, issued 3 s in the future', 2, 3],
    ] as const)('accepts a token of %s', async (_name, generation, shift) => {
      const res = await agent.get(
        airflowPath(rel),
        await airflowToken({ generation, filename: rel, shift }),
      );
      expect(res.status).toBe(200);
      expect(sha(res.body)).toBe(sha(bytes));
    });

    it.each([
      ['Airflow 3, expired 40 s ago, beyond the 30 s grace', 3, -70],
      ['Airflow 3, issued 40 s in the future', 3, 40],
      ["Airflow 2, expired 10 s ago, beyond JWTSigner's 5 s leeway", 2, -40],
      ['Airflow 2, issued 10 s in the future', 2, 10],
    ] as const)('refuses a token of %s with 403', async (_name, generation, shift) => {
      const res = await agent.get(
        airflowPath(rel),
        await airflowToken({ generation, filename: rel, shift }),
      );
      expect(res.status).toBe(403);
      expect(res.body.includes(bytes.subarray(0, 64))).toBe(false);
    });
  });

  describe('refuses, without one byte of the log,', () => {
    function expectRefused(res: RawResponse, status: number) {
      expect(res.status).toBe(status);
      expect(res.body.length).toBeLessThan(1000);
      expect(res.body.includes(bytes.subarray(0, 32))).toBe(false);
    }

    it('a token for another audience (it is not routed to the Airflow verifier: 401)', async () => {
      const token = await airflowToken({ generation: 3, filename: rel, aud: 'different-audience' });
      expectRefused(await agent.get(airflowPath(rel), token), 401);
    });

    it('a token for another file, with 403', async () => {
      const other = agent.pathTemplate.render(key({ tryNumber: 2 }));
      await agent.writeLog(key({ tryNumber: 2 }), 'the other log\n');
      expectRefused(
        await agent.get(airflowPath(rel), await airflowToken({ generation: 2, filename: other })),
        403,
      );
    });

    it.each(['HS256', 'HS384', 'none'])('a token signed with %s, with 403', async (alg) => {
      const token = await airflowToken({ generation: 3, filename: rel, alg });
      expectRefused(await agent.get(airflowPath(rel), token), 403);
    });

    it('a token signed with another secret, with 403', async () => {
      const token = await airflowToken({ generation: 2, filename: rel, secret: 'not-the-secret' });
      expectRefused(await agent.get(airflowPath(rel), token), 403);
    });

    it.each(['exp', 'iat', 'nbf'])('a token without %s, with 403', async (claim) => {
      const token = await airflowToken({ generation: 2, filename: rel, drop: [claim] });
      expectRefused(await agent.get(airflowPath(rel), token), 403);
    });

    it('a token without filename, with 403', async () => {
      const token = await airflowToken({ generation: 3, filename: rel, drop: ['filename'] });
      expectRefused(await agent.get(airflowPath(rel), token), 403);
    });

    it("an Airflow token sent as 'Bearer', which Airflow's jwt.decode refuses, with 403", async () => {
      const token = await airflowToken({ generation: 3, filename: rel });
      expectRefused(await agent.get(airflowPath(rel), `Bearer ${token}`), 403);
    });

    it('a request without an Authorization header (tasklog answers: 401)', async () => {
      expectRefused(await agent.get(airflowPath(rel)), 401);
    });
  });

  describe("tasklog's own tokens on the same route", () => {
    it('still serve the log to the proxy', async () => {
      const res = await agent.get(
        agentLogPath(rel),
        `Bearer ${await signAgentToken(agent.keys, { relativePath: rel })}`,
      );
      expect(res.status).toBe(200);
      expect(res.headers['x-tasklog-complete']).toBe('false');
      expect(sha(res.body)).toBe(sha(bytes));
    });

    it('are not accepted by the Airflow verifier, even sent bare', async () => {
      const res = await agent.get(
        agentLogPath(rel),
        await signAgentToken(agent.keys, { relativePath: rel }),
      );
      expect(res.status).toBe(401);
    });
  });
});

describe('the agent without agent.airflow_secret_key', () => {
  it('refuses Airflow tokens: only tasklog tokens are verified', async () => {
    const f = await startAirflowAgent({ airflow: false });
    try {
      const rel = f.pathTemplate.render(key());
      await f.writeLog(key(), 'the live log\n');
      const token = await airflowToken({ generation: 3, filename: rel });
      for (const authorization of [token, `Bearer ${token}`]) {
        const res = await f.get(airflowPath(rel), authorization);
        expect(res.status).toBe(401);
        expect(res.body.toString()).not.toContain('the live log');
      }
      const ok = await f.get(
        agentLogPath(rel),
        `Bearer ${await signAgentToken(f.keys, { relativePath: rel })}`,
      );
      expect(ok.body.toString()).toBe('the live log\n');
    } finally {
      await f.close();
    }
  });
});
