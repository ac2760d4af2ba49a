import type { FaultInjector } from './fault-injector.js';
import { type HttpServerOptions, type RequestHandler, startHttpServer } from './http-server.js';

/** What every HTTP emulator's handle has: its address, faults, request log and close(). */
export interface ServedEmulator<LogEntry> {
  readonly url: string;
  readonly port: number;
  readonly faults: FaultInjector;
  readonly requestLog: LogEntry[];
  close(): Promise<void>;
}

/**
 * Starts an HTTP emulator's server with `handler` and returns the handle's common part. Its
 * close() aborts `closing` (cutting fault delays and answers still being sent), stops the server,
 * then runs `release`, which also runs when the server cannot start.
 */
export async function serveEmulator<LogEntry>(
  handler: RequestHandler,
  options: HttpServerOptions,
  parts: {
    faults: FaultInjector;
    requestLog: LogEntry[];
    closing: AbortController;
    release?: () => void | Promise<void>;
  },
): Promise<ServedEmulator<LogEntry>> {
  const http = await startHttpServer(handler, options).catch(async (err: unknown) => {
    await parts.release?.();
    throw err;
  });
  return {
    url: http.url,
    port: http.port,
    faults: parts.faults,
    requestLog: parts.requestLog,
    async close() {
      parts.closing.abort();
      await http.close();
      await parts.release?.();
    },
  };
}
