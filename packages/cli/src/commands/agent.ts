import { readFile } from 'node:fs/promises';
import {
  type AgentTokenAlgorithm,
  InvalidInputError,
  loadAgentTokenKeys,
  openAirflowDb,
  Shipper,
} from '@tasklog/core';
import {
  Agent,
  AgentMetrics,
  airflowDbRule,
  type CompletionRule,
  createAgentApp,
  createMetricsApp,
  idleRule,
  Metrics,
  type RunningServer,
  startServer,
} from '@tasklog/server';
import { type Logger, pino } from 'pino';
import type { CommandContext } from '../context.js';

/**
 * Settings of `tasklog agent`, one per `[agent]` config key (the command reads them from here, so
 * the config section and its flags map onto this object in main.ts).
 */
export interface AgentCommandOptions {
  /** `agent.host`: address to bind; default 127.0.0.1. */
  host?: string;
  /** `agent.port`: port to bind, 0 for any; default 8795. */
  port?: number;
  /** `agent.url`: the URL the proxy reaches this agent at; default the bound URL. */
  url?: string;
  /** `agent.token_algorithm`: HS256, HS512, EdDSA or ES256; default HS512. */
  tokenAlgorithm?: AgentTokenAlgorithm;
  /** `agent.token_secret` / `agent.token_secret_file`: for HS256/HS512. */
  tokenSecret?: string;
  tokenSecretFile?: string;
  /** `agent.token_public_key` / `agent.token_public_key_file`: for EdDSA/ES256 (PEM or JWK). */
  tokenPublicKey?: string;
  tokenPublicKeyFile?: string;
  /** `agent.tls_cert` / `agent.tls_key`: PEM files; both or neither. */
  tlsCert?: string;
  tlsKey?: string;
  /** `agent.idle_timeout`: seconds without growth after which an attempt is abandoned; default 3600. */
  idleTimeout?: number;
  /** `agent.heartbeat_interval`: seconds between catalog heartbeats; default 30. */
  heartbeatInterval?: number;
  /** `agent.shutdown_timeout`: seconds in-flight streams may run after SIGTERM; default 10. */
  shutdownTimeout?: number;
  /**
   * `agent.airflow_secret_key`: Airflow's `[api] secret_key` (`[webserver] secret_key` in 2.x).
   * When set, the agent also answers Airflow's log-server requests, in place of `airflow serve-logs`.
   */
  airflowSecretKey?: string;
  /** `agent.airflow_clock_grace`: Airflow's `[webserver] log_request_clock_grace`; default 30. */
  airflowClockGrace?: number;
}

/**
 * Runs the worker-side agent: an HTTP(S) server serving live logs to the proxy, and a watcher
 * shipping running attempts while they are written. Stops gracefully on SIGTERM / SIGINT.
 */
export async function agentCommand(ctx: CommandContext, opts: AgentCommandOptions): Promise<void> {
  const { config } = ctx;
  const logger = pino({ level: config.logging.level }, pino.destination(2));
  if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined)) {
    throw new InvalidInputError('agent.tls_cert and agent.tls_key must be given together');
  }
  const keys = await loadAgentTokenKeys({
    algorithm: opts.tokenAlgorithm ?? 'HS512',
    secret: opts.tokenSecret,
    secretFile: opts.tokenSecretFile,
    publicKeyPem: opts.tokenPublicKey,
    publicKeyFile: opts.tokenPublicKeyFile,
  });
  const tls =
    opts.tlsCert !== undefined && opts.tlsKey !== undefined
      ? { cert: await readPem(opts.tlsCert), key: await readPem(opts.tlsKey) }
      : undefined;

  const baseLogFolder = config.core.base_log_folder;
  const airflow =
    opts.airflowSecretKey === undefined
      ? undefined
      : { secretKey: opts.airflowSecretKey, clockGraceSeconds: opts.airflowClockGrace ?? 30 };
  let agent: Agent | undefined;
  const metrics = new Metrics();
  const metricsPort = config.agent.metrics_port;
  const app = createAgentApp({
    baseLogFolder,
    pathTemplate: ctx.pathTemplate,
    keys,
    logger,
    // Counts only: whoever reaches the agent's port learns no DAG, run or task names from it.
    status: () => {
      const st = agent?.status();
      return st && { ...st, failing: st.failing.length };
    },
    airflow,
    // Airflow asks for a running attempt's log; one shipped and deleted meanwhile comes from here.
    archive: airflow ? await ctx.openStore() : undefined,
    metrics,
    serveMetrics: metricsPort === undefined,
  });
  const running = await startServer({
    app,
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 8795,
    shutdownTimeoutMs: (opts.shutdownTimeout ?? 10) * 1000,
    logger,
    tls,
  });
  let metricsServer: RunningServer | undefined;
  if (metricsPort !== undefined) {
    metricsServer = await startServer({
      app: createMetricsApp(metrics, logger),
      host: opts.host ?? '127.0.0.1',
      port: metricsPort,
      shutdownTimeoutMs: 1000,
      logger,
      tls,
    });
  }
  const agentUrl = opts.url ?? running.url;
  const idleTimeoutMs = (opts.idleTimeout ?? 3600) * 1000;
  // As ctx.shipper(), but over a store and a catalog that count bytes shipped and catalog errors.
  const store = await ctx.openStore();
  const shipMetrics = new AgentMetrics(metrics, store.url);
  const catalog = shipMetrics.instrumentCatalog(await ctx.openCatalog());
  const shipper = new Shipper({
    store: shipMetrics.instrumentStore(store),
    catalog,
    pathTemplate: ctx.pathTemplate,
    baseLogFolder,
    stateFolder: config.core.state_folder,
    deleteLocalCopy: config.core.delete_local_copy,
    retryMaxIntervalMs: config.store.retry_max_interval * 1000,
  });
  const watcher = new Agent({
    shipper,
    catalog,
    metrics: shipMetrics,
    pathTemplate: ctx.pathTemplate,
    baseLogFolder,
    agentUrl,
    logger,
    completion: await completionRule(ctx, idleTimeoutMs, logger),
    flushIntervalMs: config.store.flush_interval * 1000,
    idleTimeoutMs,
    heartbeatIntervalMs: (opts.heartbeatInterval ?? 30) * 1000,
    scanIntervalMs: config.agent.scan_interval * 1000,
    shipConcurrency: config.agent.ship_concurrency,
    retryMaxIntervalMs: config.store.retry_max_interval * 1000,
  });
  agent = watcher;
  shipMetrics.watch(watcher);
  watcher.start();
  process.stdout.write(
    `tasklog agent is following ${baseLogFolder} and serving live logs on ${running.url}` +
      (agentUrl === running.url ? '' : ` (advertised as ${agentUrl})`) +
      (airflow ? ', also to Airflow as its worker log server' : '') +
      // After a space: scripts read the first URL up to the next blank.
      (metricsServer ? ` (metrics at ${metricsServer.url}/metrics)\n` : '\n'),
  );

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down: shipping what has finished, flushing the rest');
      // Within the shutdown timeout, attempts that just finished are shipped (a pod stopped after
      // its task ended); running ones are flushed. Open live streams get the same timeout.
      const drainMs = (opts.shutdownTimeout ?? 10) * 1000;
      Promise.allSettled([
        watcher.close({ drainMs }),
        running.close(),
        metricsServer?.close(),
      ]).then(() => resolve());
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/** The rule of `agent.completion` (the completion marker always counts besides it). */
async function completionRule(
  ctx: CommandContext,
  idleTimeoutMs: number,
  logger: Logger,
): Promise<CompletionRule> {
  const { completion, airflow_db_url: url } = ctx.config.agent;
  if (completion === 'idle') return idleRule(idleTimeoutMs, 'shipped');
  const idleFallback = idleRule(idleTimeoutMs, 'abandoned');
  if (completion === 'marker') return idleFallback;
  if (url === undefined) {
    throw new InvalidInputError(
      'agent.completion = "airflow-db" needs agent.airflow_db_url (Airflow\'s sql_alchemy_conn, ' +
        'read only; give the password through agent.airflow_db_url_cmd)',
    );
  }
  return airflowDbRule(await openAirflowDb(url), idleFallback, logger);
}

async function readPem(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    throw new InvalidInputError(`cannot read the TLS file ${file}`, { cause });
  }
}
