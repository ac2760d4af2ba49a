import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AgentTokenKeys,
  type AttemptKey,
  LocalStore,
  loadAgentTokenKeys,
  PathTemplate,
  type SignAgentTokenOptions,
  signAgentToken,
} from '@tasklog/core';
import {
  type AgentAppDeps,
  createAgentApp,
  type RunningServer,
  type StartServerOptions,
  startServer,
} from '@tasklog/server';
import { pino } from 'pino';
import { localLogFiles } from './fixture.js';

export interface AgentFixture {
  /** Temp folder; the base log folder is `<dir>/logs`. */
  dir: string;
  base: string;
  pathTemplate: PathTemplate;
  keys: AgentTokenKeys;
  url: string;
  running: RunningServer;
  /** The archive at `<dir>/archive`, with the option `archive`. */
  archive: LocalStore | undefined;
  /** Absolute path of an attempt's log under the base folder. */
  fileOf(k: AttemptKey): string;
  writeLog(k: AttemptKey, bytes: Uint8Array | string): Promise<string>;
  token(relativePath: string, options?: Partial<SignAgentTokenOptions>): Promise<string>;
  close(): Promise<void>;
}

export const HS512_SECRET = randomBytes(48).toString('base64'); // 64 ASCII bytes

/** The agent path of an attempt's log, each segment percent-encoded as a proxy must. */
export function agentLogPath(relativePath: string, query = ''): string {
  const encoded = relativePath.split('/').map(encodeURIComponent).join('/');
  return `/log/${encoded}${query ? `?${query}` : ''}`;
}

export async function startAgentFixture(
  options: {
    keys?: AgentTokenKeys;
    signingKeys?: AgentTokenKeys;
    isFinished?: (file: string) => Promise<boolean>;
    /** Serves Airflow's own log requests too, with Airflow's secret key. */
    airflow?: AgentAppDeps['airflow'];
    /** Gives the agent an archive to serve shipped logs from (`archive`, closed by `close`). */
    archive?: boolean;
    /** Serves HTTPS with this certificate and key. */
    tls?: StartServerOptions['tls'];
  } = {},
): Promise<AgentFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'tasklog-agent-'));
  const base = join(dir, 'logs');
  await mkdir(base, { recursive: true });
  const pathTemplate = new PathTemplate();
  const keys =
    options.keys ?? (await loadAgentTokenKeys({ algorithm: 'HS512', secret: HS512_SECRET }));
  const signingKeys = options.signingKeys ?? keys;
  const logger = pino({ level: 'silent' });
  const archive = options.archive
    ? new LocalStore({ root: join(dir, 'archive'), pathTemplate })
    : undefined;
  const app = createAgentApp({
    baseLogFolder: base,
    pathTemplate,
    keys,
    logger,
    isFinished: options.isFinished,
    airflow: options.airflow,
    archive,
  });
  const running = await startServer({
    app,
    host: '127.0.0.1',
    port: 0,
    shutdownTimeoutMs: 1000,
    logger,
    tls: options.tls,
  });
  const logs = localLogFiles(base, pathTemplate);
  return {
    dir,
    base,
    pathTemplate,
    keys,
    url: running.url,
    running,
    archive,
    fileOf: logs.fileOf,
    writeLog: (k, bytes) => logs.write(k, bytes),
    token: (relativePath, extra = {}) => signAgentToken(signingKeys, { relativePath, ...extra }),
    async close() {
      await running.close();
      await archive?.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
