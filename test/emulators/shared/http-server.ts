/** Start-up and shutdown of an emulator's HTTP server, the same for every emulator. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HttpServerOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string | undefined;
  /** Port; default 0 (any free port). */
  port?: number | undefined;
}

export interface RunningHttpServer {
  readonly server: Server;
  /** `http://HOST:PORT` of the address actually bound (IPv6 in brackets). */
  readonly url: string;
  readonly port: number;
  /** Stops listening and drops open connections (keep-alive ones included). */
  close(): Promise<void>;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

/** Listens on `host:port`; fails if the port is taken. */
export async function startHttpServer(
  handler: RequestHandler,
  options: HttpServerOptions = {},
): Promise<RunningHttpServer> {
  const server = createServer((req, res) => {
    void handler(req, res);
  });
  // Uploads of tens of MB through slow fault paths must not hit Node's default request timeout.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: () => closeHttpServer(server),
  };
}

export function closeHttpServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
