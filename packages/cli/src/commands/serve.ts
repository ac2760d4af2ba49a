import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type AgentTokenKeys,
  attemptKey,
  loadAgentTokenKeys,
  openStore,
  storeOptionsFromConfig,
  type TasklogConfig,
} from '@tasklog/core';
import {
  AgentUrlPolicy,
  assertAuthFor,
  authenticatorFromConfig,
  createApp,
  isLoopback,
  LOOPBACK_HOSTS,
  startServer,
} from '@tasklog/server';
import { pino } from 'pino';
import type { CommandContext } from '../context.js';
import { startRetentionSchedule } from '../retention.js';

export interface ServeOptions {
  demo?: boolean;
  /** Serve without authentication on an address other than loopback. */
  insecureNoAuth?: boolean;
}

/** A comma-separated config value as a list. */
const list = (value: string) =>
  value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);

const DEMO = { dagId: 'tasklog_demo', runId: 'manual__2026-01-01T00:00:00+00:00', taskId: 'hello' };

export async function serveCommand(ctx: CommandContext, options: ServeOptions): Promise<void> {
  const { config } = ctx;
  const logger = pino({ level: config.logging.level }, pino.destination(2));
  // Checked before anything is opened: an unprotected proxy must not start at all.
  const auth = await authenticatorFromConfig(config.auth);
  assertAuthFor(config.server.host, auth, options.insecureNoAuth === true);
  if (!auth && options.insecureNoAuth && !isLoopback(config.server.host)) {
    logger.warn(
      { host: config.server.host },
      'serving without authentication (--insecure-no-auth): anyone who reaches this port reads every log',
    );
  }
  const store = await ctx.openStore();
  const catalog = await ctx.openCatalog();
  if (options.demo) await shipDemo(ctx);

  const agentTokenKeys = await proxySigningKeys(config.agent);
  if (!agentTokenKeys) {
    logger.warn(
      'no agent token key configured ([agent] token_secret or token_private_key): running attempts are followed from the archive only',
    );
  }
  const app = createApp({
    auth,
    agentTokenKeys,
    store,
    catalog,
    pathTemplate: ctx.pathTemplate,
    logger,
    // Attempts shipped to an earlier archive are read from where the catalog says they are.
    openStore: (url) => openStore(url, storeOptionsFromConfig(ctx.config, ctx.pathTemplate)),
    readStoreUrls: list(config.store.read_urls),
    // On loopback only loopback names, so no web page can rebind its own name to this proxy.
    allowedHosts: list(config.server.allowed_hosts).length
      ? list(config.server.allowed_hosts)
      : isLoopback(config.server.host)
        ? LOOPBACK_HOSTS
        : [],
    maxFollowers: config.server.max_followers,
    maxFollowersPerAttempt: config.server.max_followers_per_attempt,
    sendTimeoutMs: config.server.send_timeout * 1000,
    searchTimeLimitMs: config.server.search_time_limit * 1000,
    ui: config.server.ui,
    uiDir: serverUiDir(),
    agentUrlPolicy: new AgentUrlPolicy(list(config.agent.allowed_urls)),
    // Silent past agent.heartbeat_timeout: the agent counts as lost, the attempt as abandoned.
    live: { staleAfterMs: config.agent.heartbeat_timeout * 1000 },
  });
  const running = await startServer({
    app,
    host: config.server.host,
    port: config.server.port,
    shutdownTimeoutMs: config.server.shutdown_timeout * 1000,
    maxConnections: config.server.max_connections,
    logger,
  });
  // After the server is up: a long first prune must not delay serving.
  const retention =
    config.retention.keep_days === undefined
      ? undefined
      : startRetentionSchedule({
          ctx,
          store,
          catalog,
          keepDays: config.retention.keep_days,
          intervalMs: config.retention.interval * 1000,
          logger,
        });
  process.stdout.write(`tasklog is serving ${store.url} on ${running.url}\n`);
  if (options.demo) {
    const q = (s: string) => `'${s}'`;
    process.stdout.write(
      `\nA demo attempt is shipped. Open ${running.url}/dags/${DEMO.dagId}/runs/${encodeURIComponent(DEMO.runId)}/tasks/${DEMO.taskId}/attempts/1 in a browser, or try, in another terminal of this folder:\n` +
        `  npx -y pnpm@12.4.2 --silent tasklog fetch ${DEMO.dagId} ${q(DEMO.runId)} ${DEMO.taskId} --server ${running.url}\n` +
        `  curl ${running.url}/api/v1/dags/${DEMO.dagId}/runs/${encodeURIComponent(DEMO.runId)}/tasks/${DEMO.taskId}/attempts/1/log\n` +
        `  curl '${running.url}/api/v1/attempts?dagId=${DEMO.dagId}'\n\nStop with Ctrl-C.\n`,
    );
  }

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down: finishing in-flight requests');
      Promise.all([running.close(), retention?.stop()])
        .then(() => app.closeStores())
        .then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/**
 * The viewer built into @tasklog/server's package (`ui/` beside its `dist/`). Found through the
 * package's resolution: this command runs from the CLI's bundle, where the server's own
 * `import.meta.url` would point into the bundle. Undefined (the server's default) when unresolvable.
 */
function serverUiDir(): string | undefined {
  try {
    return fileURLToPath(new URL('../ui', import.meta.resolve('@tasklog/server')));
  } catch {
    return undefined;
  }
}

/** The key the proxy signs agent tokens with: the shared secret, or the private key. */
async function proxySigningKeys(
  agent: TasklogConfig['agent'],
): Promise<AgentTokenKeys | undefined> {
  const configured =
    agent.token_secret ??
    agent.token_secret_file ??
    agent.token_private_key ??
    agent.token_private_key_file;
  if (configured === undefined) return undefined;
  return loadAgentTokenKeys({
    algorithm: agent.token_algorithm,
    secret: agent.token_secret,
    secretFile: agent.token_secret_file,
    privateKeyPem: agent.token_private_key,
    privateKeyFile: agent.token_private_key_file,
  });
}

/** Writes a small finished attempt into the base log folder (once) and ships it. */
async function shipDemo(ctx: CommandContext) {
  const key = attemptKey({ ...DEMO, tryNumber: 1 });
  const rel = ctx.pathTemplate.render(key);
  const file = join(ctx.config.core.base_log_folder, ...rel.split('/'));
  const exists = await stat(file).then(
    () => true,
    () => false,
  );
  if (!exists) {
    const lines = [
      '[2026-01-01T00:00:01.000+0000] {taskinstance.py:1} INFO - Starting attempt 1 of 1',
      '[2026-01-01T00:00:01.100+0000] {demo.py:7} INFO - Hello from tasklog 👋 — héllo, wörld, 日本語',
      ...Array.from(
        { length: 20 },
        (_, i) =>
          `[2026-01-01T00:00:02.${String(i).padStart(3, '0')}+0000] {demo.py:9} INFO - step ${i + 1} of 20 done`,
      ),
      '[2026-01-01T00:00:03.000+0000] {taskinstance.py:2} INFO - Marking task as SUCCESS',
    ];
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${lines.join('\n')}\n`);
  }
  await (await ctx.shipper({ deleteLocalCopy: false })).shipFile(file);
}
