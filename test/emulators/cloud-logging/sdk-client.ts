import { Logging } from '@google-cloud/logging';
import * as grpc from '@grpc/grpc-js';
import type { CloudLoggingEmulator } from './cloud-logging-emulator.js';

/**
 * The official SDK's Logging client on the emulator's gRPC server, in plain text. Not exported by
 * index.ts, so that starting the emulator does not load the SDK.
 */
export function sdkLogging(emulator: CloudLoggingEmulator, projectId: string): Logging {
  // `sslCreds` is a gax option the SDK passes through but does not declare.
  return new Logging({
    projectId,
    apiEndpoint: emulator.host,
    port: emulator.port,
    sslCreds: grpc.credentials.createInsecure(),
  } as ConstructorParameters<typeof Logging>[0]);
}
