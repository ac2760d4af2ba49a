import { randomBytes } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { signAgentToken } from '@tasklog/core';
import { describe, expect, it } from 'vitest';
import { agentLogPath } from './agent-fixture.js';
import * as fx from './airflow-agent-fixture.js';
import { key, type RawResponse, rawGet } from './fixture.js';

// Airflow's tokens on the agent's log route: what it serves for them, the clock grace, what it
// refuses, and tasklog's own tokens beside them. Paths and files are in airflow-log-paths.test.ts.
describe('the agent as Airflow log server', () => {
  fx.serveOneLogPerTest();

  it.each([
    [2, 'application/json'],
    [3, 'text/plain; charset=utf-8'],
  ] as const)(
    "answers an Airflow %i token with exactly the file's bytes, as %s",
    async (generation, contentType) => {
      const res = await fx.airflowGet({ generation });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe(contentType);
      expect(res.headers['content-length']).toBe(String(fx.bytes.length));
      expect(fx.sha(res.body)).toBe(fx.sha(fx.bytes));
    },
  );

  it('sends a growing log as far as it was written when opened, with that Content-Length', async () => {
    const file = fx.agent.fileOf(key());
    const written = [fx.bytes];
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
        const res = await fx.airflowGet({ generation: 3 });
        const sofar = Buffer.concat(written);
        expect(res.status).toBe(200);
        expect(res.body.length).toBe(Number(res.headers['content-length']));
        expect(res.body.length).toBeGreaterThanOrEqual(fx.bytes.length);
        expect(res.body.equals(sofar.subarray(0, res.body.length))).toBe(true);
      }
    } finally {
      writing = false;
      await writer;
    }
    const last = await fx.airflowGet({ generation: 2 });
    expect(fx.sha(last.body)).toBe(fx.sha(Buffer.concat(written)));
  });

  it('answers a single byte range with 206, as Werkzeug and Starlette do', async () => {
    const res = await rawGet(fx.agent.url, fx.airflowPath(fx.rel), {
      authorization: await fx.airflowToken({ generation: 2, filename: fx.rel }),
      range: 'bytes=100-199',
    });
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe(`bytes 100-199/${fx.bytes.length}`);
    expect(res.body.equals(fx.bytes.subarray(100, 200))).toBe(true);
  });

  describe('clock grace', () => {
    it.each([
      ['Airflow 3, expired 20 s ago, within the 30 s grace', 3, -50, 200],
      ['Airflow 3, issued 20 s in the future', 3, 20, 200],
      ["Airflow 2, expired 3 s ago, within JWTSigner's 5 s leeway", 2, -33, 200],
      ['Airflow 2, issued 3 s in the future', 2, 3, 200],
      ['Airflow 3, expired 40 s ago, beyond the 30 s grace', 3, -70, 403],
      ['Airflow 3, issued 40 s in the future', 3, 40, 403],
      ["Airflow 2, expired 10 s ago, beyond JWTSigner's 5 s leeway", 2, -40, 403],
      ['Airflow 2, issued 10 s in the future', 2, 10, 403],
    ] as const)('answers a token of %s with %i', async (_name, generation, shift, status) => {
      const res = await fx.airflowGet({ generation, shift });
      expect(res.status).toBe(status);
      // The whole log with a 200; not one byte of it with a refusal.
      if (status === 200) expect(fx.sha(res.body)).toBe(fx.sha(fx.bytes));
      else expect(res.body.includes(fx.bytes.subarray(0, 64))).toBe(false);
    });
  });

  describe('refuses, without one byte of the log,', () => {
    function expectRefused(res: RawResponse, status: number) {
      expect(res.status).toBe(status);
      expect(res.body.length).toBeLessThan(1000);
      expect(res.body.includes(fx.bytes.subarray(0, 32))).toBe(false);
    }

    it('a token for another audience (it is not routed to the Airflow verifier: 401)', async () => {
      expectRefused(await fx.airflowGet({ generation: 3, aud: 'different-audience' }), 401);
    });

    it('a token for another file, with 403', async () => {
      const other = fx.agent.pathTemplate.render(key({ tryNumber: 2 }));
      await fx.agent.writeLog(key({ tryNumber: 2 }), 'the other log\n');
      expectRefused(await fx.airflowGet({ generation: 2, filename: other }, fx.rel), 403);
    });

    it.each(['HS256', 'HS384', 'none'])('a token signed with %s, with 403', async (alg) => {
      expectRefused(await fx.airflowGet({ generation: 3, alg }), 403);
    });

    it('a token signed with another secret, with 403', async () => {
      expectRefused(await fx.airflowGet({ generation: 2, secret: 'not-the-secret' }), 403);
    });

    it.each(['exp', 'iat', 'nbf'])('a token without %s, with 403', async (claim) => {
      expectRefused(await fx.airflowGet({ generation: 2, drop: [claim] }), 403);
    });

    it('a token without filename, with 403', async () => {
      expectRefused(await fx.airflowGet({ generation: 3, drop: ['filename'] }), 403);
    });

    it("an Airflow token sent as 'Bearer', which Airflow's jwt.decode refuses, with 403", async () => {
      const token = await fx.airflowToken({ generation: 3, filename: fx.rel });
      expectRefused(await fx.agent.get(fx.airflowPath(fx.rel), `Bearer ${token}`), 403);
    });

    it('a request without an Authorization header (tasklog answers: 401)', async () => {
      expectRefused(await fx.agent.get(fx.airflowPath(fx.rel)), 401);
    });
  });

  describe("tasklog's own tokens on the same route", () => {
    it('still serve the log to the proxy', async () => {
      const res = await fx.agent.get(
        agentLogPath(fx.rel),
        `Bearer ${await signAgentToken(fx.agent.keys, { relativePath: fx.rel })}`,
      );
      expect(res.status).toBe(200);
      expect(res.headers['x-tasklog-complete']).toBe('false');
      expect(fx.sha(res.body)).toBe(fx.sha(fx.bytes));
    });

    it('are not accepted by the Airflow verifier, even sent bare', async () => {
      const res = await fx.agent.get(
        agentLogPath(fx.rel),
        await signAgentToken(fx.agent.keys, { relativePath: fx.rel }),
      );
      expect(res.status).toBe(401);
    });
  });
});

describe('the agent without agent.airflow_secret_key', () => {
  it('refuses Airflow tokens: only tasklog tokens are verified', async () => {
    const f = await fx.startAirflowAgent({ airflow: false });
    try {
      const rel = f.pathTemplate.render(key());
      await f.writeLog(key(), 'the live log\n');
      const token = await fx.airflowToken({ generation: 3, filename: rel });
      for (const authorization of [token, `Bearer ${token}`]) {
        const res = await f.get(fx.airflowPath(rel), authorization);
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
