import { readFile } from 'node:fs/promises';
import { type AgentTokenAlgorithm, InvalidInputError, loadAgentTokenKeys } from '@tasklog/core';
import { Agent, createAgentApp, startServer } from '@tasklog/server';
import { pino } from 'pino';
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
  const app = createAgentApp({ baseLogFolder, pathTemplate: ctx.pathTemplate, keys, logger });
  const running = await startServer({
    app,
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 8795,
    shutdownTimeoutMs: (opts.shutdownTimeout ?? 10) * 1000,
    logger,
    tls,
  });
  const agentUrl = opts.url ?? running.url;
  const agent = new Agent({
    shipper: await ctx.shipper(),
    catalog: await ctx.openCatalog(),
    pathTemplate: ctx.pathTemplate,
    baseLogFolder,
    agentUrl,
    logger,
    flushIntervalMs: config.store.flush_interval * 1000,
    idleTimeoutMs: (opts.idleTimeout ?? 3600) * 1000,
    heartbeatIntervalMs: (opts.heartbeatInterval ?? 30) * 1000,
  });
  agent.start();
  process.stdout.write(
    `tasklog agent is following ${baseLogFolder} and serving live logs on ${running.url}` +
      (agentUrl === running.url ? '\n' : ` (advertised as ${agentUrl})\n`),
  );

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down: flushing followed attempts');
      // Follows are stopped first so their last bytes reach the store; open live streams get
      // the server's shutdown timeout.
      Promise.allSettled([agent.close(), running.close()]).then(() => resolve());
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

async function readPem(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    throw new InvalidInputError(`cannot read the TLS file ${file}`, { cause });
  }
}
