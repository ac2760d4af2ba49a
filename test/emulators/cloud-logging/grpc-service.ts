/**
 * `google.logging.v2.LoggingServiceV2` over gRPC (the SDK's default transport), from the
 * `logging.proto` shipped in the SDK's dependencies: WriteLogEntries, ListLogEntries and
 * DeleteLog; the other methods answer UNIMPLEMENTED.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { FaultInjector } from '../shared/fault-injector.js';
import type { RunCall } from './calls.js';
import { Code, type EntryStore, LoggingApiError } from './entry-store.js';
import { fromGrpcEntry, type GrpcEntry, toGrpcEntry } from './messages.js';

const SERVICE = 'google.logging.v2.LoggingServiceV2';

/** Where the SDK's dependencies keep `google/logging/v2/logging.proto` and its imports. */
export function loggingProtoDirs(): string[] {
  const require = createRequire(import.meta.url);
  const sdk = createRequire(require.resolve('@google-cloud/logging'));
  const up = (file: string) => path.resolve(path.dirname(file), '..', 'protos');
  return [up(sdk.resolve('@google-cloud/logging-api')), up(sdk.resolve('google-gax'))];
}

let definition: Promise<protoLoader.PackageDefinition> | undefined;
function loadDefinition(): Promise<protoLoader.PackageDefinition> {
  definition ??= protoLoader.load('google/logging/v2/logging.proto', {
    includeDirs: loggingProtoDirs(),
    keepCase: false,
    longs: String,
    enums: Number,
    defaults: false,
    oneofs: true,
  });
  return definition;
}

interface WriteRequest {
  logName?: string;
  resource?: { type?: string; labels?: Record<string, string> };
  labels?: Record<string, string>;
  entries?: GrpcEntry[];
  partialSuccess?: boolean;
  dryRun?: boolean;
}

interface ListRequest {
  resourceNames?: string[];
  filter?: string;
  orderBy?: string;
  pageSize?: number;
  pageToken?: string;
}

type UnaryHandler = (
  call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>,
  cb: grpc.sendUnaryData<unknown>,
) => void;

/** Binds the service on `host:port`; returns the port bound and a forced shutdown. */
export async function startGrpcService(
  store: EntryStore,
  faults: FaultInjector,
  run: RunCall,
  host: string,
  port: number,
): Promise<{ port: number; close(): void }> {
  const serviceDef = (await loadDefinition())[SERVICE] as grpc.ServiceDefinition;
  // The 10 MB request limit is the service's own check, so the server must take bigger messages
  // than grpc-js's default 4 MiB; the sizes are remembered from the raw bytes.
  const sizes = new WeakMap<object, number>();
  const measured: grpc.ServiceDefinition = Object.fromEntries(
    Object.entries(serviceDef).map(([name, method]) => [
      name,
      {
        ...method,
        requestDeserialize: (bytes: Buffer) => {
          const msg = method.requestDeserialize(bytes) as object;
          sizes.set(msg, bytes.length);
          return msg;
        },
      },
    ]),
  );

  /** A unary method: its fault, its work, its answer or gRPC error. */
  const unary = (
    method: string,
    work: (request: object) => unknown,
    entries?: (r: object) => number,
  ) =>
    ((call, cb) => {
      const action = faults.pick({ method, path: `/${SERVICE}/${method}` });
      const request = call.request;
      run({
        transport: 'grpc',
        method,
        action,
        entries: entries?.(request),
        work: () => work(request),
      })
        .then((res) => cb(null, res))
        .catch((err: unknown) => {
          if (err instanceof LoggingApiError) cb({ code: err.code, details: err.message });
          else
            cb({ code: Code.INTERNAL, details: err instanceof Error ? err.message : String(err) });
        });
    }) satisfies UnaryHandler;
  const unimplemented: UnaryHandler = (_call, cb) =>
    cb({ code: grpc.status.UNIMPLEMENTED, details: 'Not implemented by the emulator.' });

  const handlers: grpc.UntypedServiceImplementation = {
    WriteLogEntries: unary(
      'WriteLogEntries',
      (request) => {
        const req = request as WriteRequest;
        store.write({
          logName: req.logName,
          resource: req.resource
            ? { type: req.resource.type, labels: req.resource.labels ?? {} }
            : undefined,
          labels: req.labels,
          entries: (req.entries ?? []).map(fromGrpcEntry),
          partialSuccess: req.partialSuccess,
          dryRun: req.dryRun,
          requestBytes: sizes.get(request) ?? 0,
        });
        return {};
      },
      (request) => ((request as WriteRequest).entries ?? []).length,
    ),
    ListLogEntries: unary('ListLogEntries', (request) => {
      const req = request as ListRequest;
      const res = store.list({
        resourceNames: req.resourceNames ?? [],
        filter: req.filter,
        orderBy: req.orderBy,
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return { entries: res.entries.map(toGrpcEntry), nextPageToken: res.nextPageToken };
    }),
    DeleteLog: unary('DeleteLog', (request) => {
      store.deleteLog(String((request as { logName?: string }).logName ?? ''));
      return {};
    }),
    ListMonitoredResourceDescriptors: unimplemented,
    ListLogs: unimplemented,
    TailLogEntries: (call: grpc.ServerDuplexStream<unknown, unknown>) =>
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'Not implemented.' }),
  };

  const server = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  server.addService(measured, handlers);
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  return { port: bound, close: () => server.forceShutdown() };
}
