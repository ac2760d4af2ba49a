import { createRequire } from 'node:module';
import { InvalidInputError } from '../../errors.js';
import { importOptional } from '../../optional-import.js';
import type { ApiEntry } from './entries.js';
import { type EncodedWrite, encodedWrite } from './grpc-write.js';

// The part of `@google-cloud/logging` the store uses: its generated LoggingServiceV2Client
// (`any` in the SDK's typings), created lazily with the endpoint and transport configured.

export interface CallOptions {
  retry: null;
  timeout: number;
  autoPaginate?: boolean;
}

export interface LoggingClient {
  initialize(): Promise<unknown>;
  getProjectId(): Promise<string>;
  writeLogEntries(request: object, options: CallOptions): Promise<unknown>;
  listLogEntries(
    request: object,
    options: CallOptions,
  ): Promise<[ApiEntry[], unknown, { nextPageToken?: string | null } | undefined]>;
  close(): Promise<void>;
}

export interface Context {
  client: LoggingClient;
  /** `projects/P/logs/NAME` with NAME URL-encoded. */
  logName: string;
  project: string;
  /** WriteLogEntries with tasklog's own encoding (gRPC only; see grpc-write.ts). */
  writeEncoded: EncodedWrite | undefined;
}

/**
 * A started client and the log's full name. `apiEndpoint` `http://host:port` talks plaintext
 * without credentials (an emulator); `host:port` or `https://…` uses TLS with Application
 * Default Credentials. Throws the SDK's error when it cannot start (no credentials, no project).
 */
export async function connectLogging(options: {
  logName: string;
  projectId?: string;
  apiEndpoint?: string;
  transport: 'grpc' | 'rest';
}): Promise<Context> {
  const sdk = (await importOptional(
    '@google-cloud/logging',
    'the cloud-logging store',
    () => import('@google-cloud/logging'),
  )) as unknown as {
    v2: { LoggingServiceV2Client: new (options: object) => LoggingClient };
  };
  const settings: Record<string, unknown> = {};
  if (options.projectId) settings.projectId = options.projectId;
  const transport = options.transport;
  if (transport === 'rest') settings.fallback = 'rest';
  const endpoint = options.apiEndpoint;
  if (endpoint) {
    const m = /^(?:(https?):\/\/)?([^/:]+|\[[^\]]+\])(?::(\d+))?\/?$/i.exec(endpoint);
    if (!m) {
      throw new InvalidInputError(
        `cloud_logging.api_endpoint must be host[:port] or http(s)://host[:port], got ${endpoint}`,
      );
    }
    const plain = m[1]?.toLowerCase() === 'http';
    settings.apiEndpoint = m[2];
    settings.port = m[3] ? Number(m[3]) : plain ? 80 : 443;
    if (plain) {
      // An emulator: no TLS, no credentials. The SDK's own dependencies provide the pieces,
      // so they are the instances the SDK checks against.
      const sdkRequire = createRequire(
        createRequire(import.meta.url).resolve('@google-cloud/logging'),
      );
      if (transport === 'rest') {
        const auth = sdkRequire('google-auth-library') as { PassThroughClient: new () => object };
        settings.protocol = 'http';
        settings.authClient = new auth.PassThroughClient();
      } else {
        const gax = sdkRequire('google-gax') as {
          grpc: { credentials: { createInsecure(): unknown } };
        };
        settings.sslCreds = gax.grpc.credentials.createInsecure();
      }
    }
  }
  const client = new sdk.v2.LoggingServiceV2Client(settings);
  // The generated methods start the client with `initialize().catch((e) => { throw e })`, an
  // unhandled rejection that kills the process when credentials are missing. Starting it here
  // first turns that into an error of this call, and no method runs on a client that failed.
  await client.initialize();
  const project = options.projectId ?? (await client.getProjectId());
  return {
    client,
    project,
    logName: `projects/${project}/logs/${encodeURIComponent(options.logName)}`,
    writeEncoded: await encodedWrite(client),
  };
}
