/**
 * A local Cloud Logging (Stackdriver) service for `@google-cloud/logging` and other standard
 * clients: `google.logging.v2.LoggingServiceV2` WriteLogEntries, ListLogEntries and DeleteLog
 * over gRPC (the SDK's default transport; the service definition is the `logging.proto` shipped
 * in the SDK's dependencies) and over REST (`POST /v2/entries:write`, `POST /v2/entries:list`,
 * `DELETE /v2/{logName}`), one in-memory entry set behind both. Limits, de-duplication, the
 * filter subset and paging live in `entry-store.ts`.
 *
 * Faults come from the shared FaultInjector, one decision per call, mapped onto gRPC codes
 * (calls.ts). Over REST they are the HTTP statuses with Google's JSON error body and real
 * socket resets. Transports: grpc-service.ts and rest-service.ts.
 *
 * Connect the SDK with
 *   gRPC: `{ projectId, apiEndpoint: host, port, sslCreds: grpc.credentials.createInsecure() }`
 *   REST: `{ projectId, apiEndpoint: host, port: restPort, protocol: 'http', fallback: 'rest', authClient }`.
 */
import { FaultInjector } from '../shared/fault-injector.js';
import { startHttpServer } from '../shared/http-server.js';
import { callRunner, type RequestLogEntry } from './calls.js';
import { EntryStore } from './entry-store.js';
import { startGrpcService } from './grpc-service.js';
import { restHandler } from './rest-service.js';

export type { RequestLogEntry } from './calls.js';
export { loggingProtoDirs } from './grpc-service.js';

export interface CloudLoggingEmulatorOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** gRPC port; default 0 (any free port). */
  port?: number;
  /** REST port; default 0 (any free port). */
  restPort?: number;
  /** The service's clock in ms (for the "1 day in the future" check). Default Date.now. */
  now?: () => number;
}

export interface CloudLoggingEmulator {
  readonly host: string;
  /** gRPC port. */
  readonly port: number;
  /** `HOST:PORT` of the gRPC server. */
  readonly url: string;
  readonly restPort: number;
  /** `http://HOST:PORT` of the REST server. */
  readonly restUrl: string;
  readonly faults: FaultInjector;
  readonly store: EntryStore;
  /** Every call, oldest first (the last 100,000). */
  readonly requestLog: RequestLogEntry[];
  close(): Promise<void>;
}

export async function startCloudLoggingEmulator(
  options: CloudLoggingEmulatorOptions = {},
): Promise<CloudLoggingEmulator> {
  const host = options.host ?? '127.0.0.1';
  const store = new EntryStore(options.now);
  const faults = new FaultInjector();
  const requestLog: RequestLogEntry[] = [];
  const run = callRunner(requestLog);
  const grpc = await startGrpcService(store, faults, run, host, options.port ?? 0);
  const rest = await startHttpServer(restHandler(store, faults, run), {
    host,
    port: options.restPort ?? 0,
  }).catch((err: unknown) => {
    grpc.close();
    throw err;
  });
  return {
    host,
    port: grpc.port,
    url: `${host}:${grpc.port}`,
    restPort: rest.port,
    restUrl: `http://${host}:${rest.port}`,
    faults,
    store,
    requestLog,
    async close() {
      grpc.close();
      await rest.close();
    },
  };
}
