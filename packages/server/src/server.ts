import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

/** Options of `startServer`. */
export interface StartServerOptions {
  /** Any request listener; normally the app from createApp(). */
  app: http.RequestListener;
  /** The address to listen on, e.g. `127.0.0.1` or `0.0.0.0`. */
  host: string;
  /** 0 picks a free port; `RunningServer.url` tells which. */
  port: number;
  /** How long in-flight responses may run after close() before their sockets are destroyed. */
  shutdownTimeoutMs: number;
  /** Where the server logs its own events: listening, shutting down. */
  logger: Logger;
  /** PEM certificate chain and private key; when given, the server speaks HTTPS. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Open connections at most; the kernel's backlog holds, then refuses, the rest. */
  maxConnections?: number;
}

/** A server started by `startServer`. */
export interface RunningServer {
  /** `http://host:port` (`https://` with `tls`), with the port actually bound. */
  readonly url: string;
  /** The Node server (an `https.Server` with `tls`). */
  readonly server: http.Server;
  /**
   * Graceful stop: accepts no more connections, closes idle keep-alive sockets at once, lets
   * in-flight responses finish for up to `shutdownTimeoutMs`, then destroys what is left.
   * Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

/** Listens on host:port and resolves once the socket is bound. */
export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const { logger } = opts;
  const server: http.Server = opts.tls
    ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, opts.app)
    : http.createServer(opts.app);
  if (opts.maxConnections !== undefined) server.maxConnections = opts.maxConnections;
  let closing: Promise<void> | undefined;

  // A keep-alive socket that finishes its response during shutdown would otherwise linger
  // until the timeout; this tells the client and lets Node close the socket after the response.
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (closing) res.setHeader('Connection', 'close');
    res.once('close', () => {
      if (closing) setImmediate(() => server.closeIdleConnections());
    });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(opts.port, opts.host);
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${opts.tls ? 'https' : 'http'}://${host}:${address.port}`;
  logger.info({ url }, 'listening');

  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve, reject) => {
      logger.info({ timeoutMs: opts.shutdownTimeoutMs }, 'shutting down');
      const timer = setTimeout(() => {
        logger.warn('shutdown timeout reached; closing the remaining connections');
        server.closeAllConnections();
      }, opts.shutdownTimeoutMs);
      timer.unref();
      server.close((err) => {
        clearTimeout(timer);
        if (err) reject(err);
        else {
          logger.info('stopped');
          resolve();
        }
      });
      server.closeIdleConnections();
    });
    return closing;
  };

  return { url, server, close };
}
