import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { LocalStore } from '@tasklog/core';
import { afterEach, beforeEach } from 'vitest';
import { type AgentFixture, startAgentFixture } from './agent-fixture.js';
import { key, type RawResponse, rawGet } from './fixture.js';

export { sha256 as sha } from './fixture.js';

/**
 * What the tests of the agent as Airflow's log server share: tokens and requests made by Python's
 * PyJWT, as Airflow makes them (see airflow-token.py), and an agent with Airflow's secret key.
 */
const SCRIPT = fileURLToPath(new URL('./airflow-token.py', import.meta.url));
const PYTHON = '/usr/bin/python3';
const run = promisify(execFile);

// Shaped like the key Airflow generates when none is configured (16 random bytes, base64).
const AIRFLOW_SECRET = randomBytes(16).toString('base64');

export interface TokenSpec {
  generation: 2 | 3;
  filename: string;
  secret?: string;
  grace?: number;
  shift?: number;
  alg?: string;
  aud?: string;
  drop?: string[];
}

export async function airflowToken(spec: TokenSpec): Promise<string> {
  const { stdout } = await run(PYTHON, [
    SCRIPT,
    'token',
    JSON.stringify({ secret: AIRFLOW_SECRET, ...spec }),
  ]);
  return stdout.trim();
}

/** A GET made by Python the way Airflow's reader makes it. */
export async function airflowFetch(
  base: string,
  spec: TokenSpec & { path?: string },
): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const { stdout } = await run(PYTHON, [
    SCRIPT,
    'fetch',
    JSON.stringify({ secret: AIRFLOW_SECRET, base, ...spec }),
  ]);
  const out = JSON.parse(stdout) as {
    status: number;
    headers: Record<string, string>;
    body: string;
  };
  return { ...out, body: Buffer.from(out.body, 'base64') };
}

export interface AirflowAgent extends AgentFixture {
  archive: LocalStore;
  /** A GET of `path` on the agent, with `authorization` as the header when given. */
  get(path: string, authorization?: string): Promise<RawResponse>;
}

/** An agent with an archive, taking Airflow's tokens unless `airflow` is false. */
export async function startAirflowAgent(
  options: { airflow?: boolean } = {},
): Promise<AirflowAgent> {
  const agent = await startAgentFixture({
    airflow:
      options.airflow === false ? undefined : { secretKey: AIRFLOW_SECRET, clockGraceSeconds: 30 },
    archive: true,
  });
  return {
    ...agent,
    archive: agent.archive!,
    get: (path: string, authorization?: string) =>
      rawGet(agent.url, path, authorization === undefined ? {} : { authorization }),
  };
}

/**
 * The request path for a relative log path as Airflow's client sends it: requests' requote_uri
 * leaves the `=`, `:` and `+` of Airflow's paths as they are.
 */
export function airflowPath(rel: string): string {
  return `/log/${rel}`;
}

/** The agent of the running test, the relative path of the log it serves, and the log's bytes. */
export let agent: AirflowAgent;
export let rel: string;
export let bytes: Buffer;

/** Before each test: a new agent serving one 200 kB log, `key()`'s, closed after the test. */
export function serveOneLogPerTest(): void {
  beforeEach(async () => {
    agent = await startAirflowAgent();
    rel = agent.pathTemplate.render(key());
    bytes = randomBytes(200_000);
    await agent.writeLog(key(), bytes);
  });
  afterEach(async () => {
    await agent.close();
  });
}

/**
 * A GET as Airflow's webserver makes it: a token for `spec.filename` (the served log's unless
 * given), sent for the Airflow path of `path` (the token's file unless given).
 */
export async function airflowGet(
  spec: Omit<TokenSpec, 'filename'> & { filename?: string },
  path?: string,
): Promise<RawResponse> {
  const filename = spec.filename ?? rel;
  return agent.get(airflowPath(path ?? filename), await airflowToken({ ...spec, filename }));
}
