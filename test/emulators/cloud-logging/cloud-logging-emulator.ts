/**
 * A local Cloud Logging (Stackdriver) service for `@google-cloud/logging` and other standard
 * clients: `google.logging.v2.LoggingServiceV2` WriteLogEntries, ListLogEntries and DeleteLog
 * over gRPC (the SDK's default transport; the service definition is the `logging.proto` shipped
 * in the SDK's dependencies) and over REST (`POST /v2/entries:write`, `POST /v2/entries:list`,
 * `DELETE /v2/{logName}`), one in-memory entry set behind both. Limits, de-duplication, the
 * filter subset and paging live in `entry-store.ts`.
 *
 * Faults come from the GCS emulator's FaultInjector, one decision per call, mapped onto gRPC:
 * 503 → UNAVAILABLE, 429 → RESOURCE_EXHAUSTED, 500 → INTERNAL, 408 → DEADLINE_EXCEEDED,
 * reset → UNAVAILABLE before anything is done, `resetAfterCommit` → the write is applied and
 * the call still fails with UNAVAILABLE (the answer is lost). Over REST they are the HTTP
 * statuses with Google's JSON error body and real socket resets.
 *
 * Connect the SDK with
 *   gRPC: `{ projectId, apiEndpoint: host, port, sslCreds: grpc.credentials.createInsecure() }`
 *   REST: `{ projectId, apiEndpoint: host, port: restPort, protocol: 'http', fallback: 'rest', authClient }`.
 */
import { createServer, type Server as HttpServer, type IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { type FaultAction, FaultInjector } from '../gcs/fault-injector.js';
import {
  Code,
  type EntryInput,
  EntryStore,
  formatTimestamp,
  LoggingApiError,
  type StoredEntry,
} from './entry-store.js';
import { parseRfc3339, severityNumber } from './filter.js';

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

export interface RequestLogEntry {
  transport: 'grpc' | 'rest';
  /** RPC name: `WriteLogEntries`, `ListLogEntries`, `DeleteLog`. */
  method: string;
  /** gRPC status code sent (0 = OK); for REST the gRPC code the HTTP answer stands for. */
  code: number;
  /** The fault injected, if any. */
  fault?: string;
  /** Entries in a write request. */
  entries?: number;
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

const SERVICE = 'google.logging.v2.LoggingServiceV2';
const REQUEST_LOG_LIMIT = 100_000;

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

// --- message conversion ----------------------------------------------------------------------

type StructValue = {
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: { fields?: Record<string, StructValue> };
  listValue?: { values?: StructValue[] };
  kind?: string;
};

function fromStruct(
  s: { fields?: Record<string, StructValue> } | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromValue(v);
  return out;
}

function fromValue(v: StructValue): unknown {
  const kind = v.kind ?? Object.keys(v).find((k) => k !== 'kind');
  switch (kind) {
    case 'numberValue':
      return v.numberValue;
    case 'stringValue':
      return v.stringValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return fromStruct(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

function toValue(v: unknown): StructValue {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v as Record<string, unknown>) };
}

function toStruct(o: Record<string, unknown>): { fields: Record<string, StructValue> } {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(o)) fields[k] = toValue(v);
  return { fields };
}

interface GrpcTimestamp {
  seconds?: string | number;
  nanos?: number;
}

function fromGrpcTimestamp(t: GrpcTimestamp | null | undefined): bigint | undefined {
  if (!t) return undefined;
  return BigInt(t.seconds ?? 0) * 1_000_000_000n + BigInt(t.nanos ?? 0);
}

function toGrpcTimestamp(nanos: bigint): GrpcTimestamp {
  const seconds = nanos / 1_000_000_000n;
  return { seconds: seconds.toString(), nanos: Number(nanos - seconds * 1_000_000_000n) };
}

interface GrpcEntry {
  logName?: string;
  resource?: { type?: string; labels?: Record<string, string> };
  timestamp?: GrpcTimestamp;
  insertId?: string;
  labels?: Record<string, string>;
  severity?: number;
  textPayload?: string;
  jsonPayload?: { fields?: Record<string, StructValue> };
  payload?: string;
}

function fromGrpcEntry(e: GrpcEntry): EntryInput {
  return {
    logName: e.logName,
    resource: e.resource ? { type: e.resource.type, labels: e.resource.labels ?? {} } : undefined,
    timestamp: fromGrpcTimestamp(e.timestamp),
    insertId: e.insertId,
    labels: e.labels,
    severity: e.severity,
    textPayload: e.textPayload,
    jsonPayload: e.jsonPayload ? fromStruct(e.jsonPayload) : undefined,
  };
}

function toGrpcEntry(e: StoredEntry): GrpcEntry {
  return {
    logName: e.logName,
    resource: e.resource,
    timestamp: toGrpcTimestamp(e.timestamp),
    receiveTimestamp: toGrpcTimestamp(e.receiveTimestamp),
    insertId: e.insertId,
    labels: e.labels,
    severity: e.severity,
    ...(e.textPayload !== undefined ? { textPayload: e.textPayload } : {}),
    ...(e.jsonPayload !== undefined ? { jsonPayload: toStruct(e.jsonPayload) } : {}),
  } as GrpcEntry;
}

interface RestEntry {
  logName?: string;
  resource?: { type?: string; labels?: Record<string, string> };
  timestamp?: string;
  insertId?: string;
  labels?: Record<string, string>;
  severity?: number | string;
  textPayload?: string;
  jsonPayload?: Record<string, unknown>;
}

function fromRestEntry(e: RestEntry): EntryInput {
  let timestamp: bigint | undefined;
  if (e.timestamp !== undefined) {
    timestamp = parseRfc3339(e.timestamp);
    if (timestamp === undefined) {
      throw new LoggingApiError(Code.INVALID_ARGUMENT, `Invalid timestamp "${e.timestamp}".`);
    }
  }
  return {
    logName: e.logName,
    resource: e.resource ? { type: e.resource.type, labels: e.resource.labels ?? {} } : undefined,
    timestamp,
    insertId: e.insertId,
    labels: e.labels,
    severity: e.severity === undefined ? undefined : severityNumber(e.severity),
    textPayload: e.textPayload,
    jsonPayload: e.jsonPayload,
  };
}

function toRestEntry(e: StoredEntry): Record<string, unknown> {
  return {
    logName: e.logName,
    resource: e.resource,
    timestamp: formatTimestamp(e.timestamp),
    receiveTimestamp: formatTimestamp(e.receiveTimestamp),
    insertId: e.insertId,
    labels: e.labels,
    severity: e.severity,
    ...(e.textPayload !== undefined ? { textPayload: e.textPayload } : {}),
    ...(e.jsonPayload !== undefined ? { jsonPayload: e.jsonPayload } : {}),
  };
}

// --- faults ----------------------------------------------------------------------------------

interface FaultPlan {
  /** Fail before doing anything with this code. */
  before?: { code: number; message: string };
  /** Do the work, then fail with this code. */
  after?: { code: number; message: string };
  delayMs?: number;
  label: string;
}

function planFault(action: FaultAction | undefined): FaultPlan | undefined {
  if (!action) return undefined;
  if ('delayMs' in action) return { delayMs: action.delayMs, label: `delay ${action.delayMs}ms` };
  if ('status' in action) {
    const map: Record<number, [number, string]> = {
      503: [Code.UNAVAILABLE, 'The service is currently unavailable.'],
      429: [
        Code.RESOURCE_EXHAUSTED,
        "Quota exceeded for quota metric 'Write requests' of service 'logging.googleapis.com'.",
      ],
      500: [Code.INTERNAL, 'Internal error encountered.'],
      408: [Code.DEADLINE_EXCEEDED, 'Deadline expired before operation could complete.'],
    };
    const [code, message] = map[action.status]!;
    return { before: { code, message }, label: String(action.status) };
  }
  if ('reset' in action && action.resetAfterCommit) {
    return {
      after: { code: Code.UNAVAILABLE, message: 'Connection reset by peer' },
      label: 'resetAfterCommit',
    };
  }
  return {
    before: { code: Code.UNAVAILABLE, message: 'Connection reset by peer' },
    label: 'reset',
  };
}

const HTTP_OF: Record<number, [number, string]> = {
  [Code.INVALID_ARGUMENT]: [400, 'INVALID_ARGUMENT'],
  [Code.NOT_FOUND]: [404, 'NOT_FOUND'],
  [Code.PERMISSION_DENIED]: [403, 'PERMISSION_DENIED'],
  [Code.RESOURCE_EXHAUSTED]: [429, 'RESOURCE_EXHAUSTED'],
  [Code.INTERNAL]: [500, 'INTERNAL'],
  [Code.UNAVAILABLE]: [503, 'UNAVAILABLE'],
  [Code.DEADLINE_EXCEEDED]: [504, 'DEADLINE_EXCEEDED'],
};

// --- the servers -----------------------------------------------------------------------------

export async function startCloudLoggingEmulator(
  options: CloudLoggingEmulatorOptions = {},
): Promise<CloudLoggingEmulator> {
  const host = options.host ?? '127.0.0.1';
  const store = new EntryStore(options.now);
  const faults = new FaultInjector();
  const requestLog: RequestLogEntry[] = [];
  const log = (entry: RequestLogEntry) => {
    requestLog.push(entry);
    if (requestLog.length > REQUEST_LOG_LIMIT)
      requestLog.splice(0, requestLog.length - REQUEST_LOG_LIMIT);
  };

  /** Runs one call through fault injection; `work` returns the response message. */
  async function serve<T>(
    transport: 'grpc' | 'rest',
    method: string,
    requestPath: string,
    work: () => T,
    entries?: number,
  ): Promise<T> {
    const plan = planFault(faults.pick({ method, path: requestPath, uploadType: undefined }));
    const record = (code: number) =>
      log({
        transport,
        method,
        code,
        ...(plan ? { fault: plan.label } : {}),
        ...(entries !== undefined ? { entries } : {}),
      });
    if (plan?.delayMs) await sleep(plan.delayMs);
    if (plan?.before) {
      record(plan.before.code);
      throw new LoggingApiError(plan.before.code, plan.before.message);
    }
    let result: T;
    try {
      result = work();
    } catch (err) {
      record(err instanceof LoggingApiError ? err.code : Code.INTERNAL);
      throw err;
    }
    if (plan?.after) {
      record(plan.after.code);
      throw new LoggingApiError(plan.after.code, plan.after.message);
    }
    record(Code.OK);
    return result;
  }

  // gRPC
  const packageDefinition = await loadDefinition();
  const serviceDef = packageDefinition[SERVICE] as grpc.ServiceDefinition;
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
  const fail = (cb: grpc.sendUnaryData<unknown>, err: unknown) => {
    if (err instanceof LoggingApiError) cb({ code: err.code, details: err.message });
    else cb({ code: Code.INTERNAL, details: err instanceof Error ? err.message : String(err) });
  };
  const unimplemented = (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
    cb({ code: grpc.status.UNIMPLEMENTED, details: 'Not implemented by the emulator.' });
  const grpcServer = new grpc.Server({
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  const handlers: grpc.UntypedServiceImplementation = {
    WriteLogEntries: (
      call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      const req = call.request as {
        logName?: string;
        resource?: { type?: string; labels?: Record<string, string> };
        labels?: Record<string, string>;
        entries?: GrpcEntry[];
        partialSuccess?: boolean;
        dryRun?: boolean;
      };
      const entries = req.entries ?? [];
      serve(
        'grpc',
        'WriteLogEntries',
        `/${SERVICE}/WriteLogEntries`,
        () => {
          store.write({
            logName: req.logName,
            resource: req.resource
              ? { type: req.resource.type, labels: req.resource.labels ?? {} }
              : undefined,
            labels: req.labels,
            entries: entries.map(fromGrpcEntry),
            partialSuccess: req.partialSuccess,
            dryRun: req.dryRun,
            requestBytes: sizes.get(call.request) ?? 0,
          });
          return {};
        },
        entries.length,
      ).then(
        (res) => cb(null, res),
        (err) => fail(cb, err),
      );
    },
    ListLogEntries: (
      call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      const req = call.request as {
        resourceNames?: string[];
        filter?: string;
        orderBy?: string;
        pageSize?: number;
        pageToken?: string;
      };
      serve('grpc', 'ListLogEntries', `/${SERVICE}/ListLogEntries`, () => {
        const res = store.list({
          resourceNames: req.resourceNames ?? [],
          filter: req.filter,
          orderBy: req.orderBy,
          pageSize: req.pageSize,
          pageToken: req.pageToken,
        });
        return { entries: res.entries.map(toGrpcEntry), nextPageToken: res.nextPageToken };
      }).then(
        (res) => cb(null, res),
        (err) => fail(cb, err),
      );
    },
    DeleteLog: (
      call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      const logName = String((call.request as { logName?: string }).logName ?? '');
      serve('grpc', 'DeleteLog', `/${SERVICE}/DeleteLog`, () => {
        store.deleteLog(logName);
        return {};
      }).then(
        (res) => cb(null, res),
        (err) => fail(cb, err),
      );
    },
    ListMonitoredResourceDescriptors: unimplemented,
    ListLogs: unimplemented,
    TailLogEntries: (call: grpc.ServerDuplexStream<unknown, unknown>) =>
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'Not implemented.' }),
  };
  grpcServer.addService(measured, handlers);
  const grpcPort = await new Promise<number>((resolve, reject) => {
    grpcServer.bindAsync(
      `${host}:${options.port ?? 0}`,
      grpc.ServerCredentials.createInsecure(),
      (err, port) => (err ? reject(err) : resolve(port)),
    );
  });

  // REST
  const httpServer: HttpServer = createServer((req, res) => {
    void handleRest(req, res);
  });
  httpServer.requestTimeout = 0;

  async function readBody(req: IncomingMessage): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of req) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }

  async function handleRest(req: IncomingMessage, res: import('node:http').ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://emulator');
    const target = url.pathname;
    const method = req.method ?? 'GET';
    const sendJson = (status: number, body: unknown) => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json; charset=UTF-8',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    const sendError = (err: unknown) => {
      const code = err instanceof LoggingApiError ? err.code : Code.INTERNAL;
      const [status, name] = HTTP_OF[code] ?? [500, 'INTERNAL'];
      sendJson(status, {
        error: {
          code: status,
          message: err instanceof Error ? err.message : String(err),
          status: name,
        },
      });
    };
    let rpc: string;
    if (method === 'POST' && target === '/v2/entries:write') rpc = 'WriteLogEntries';
    else if (method === 'POST' && target === '/v2/entries:list') rpc = 'ListLogEntries';
    else if (method === 'DELETE' && /^\/v2\/projects\/[^/]+\/logs\/.+$/.test(target))
      rpc = 'DeleteLog';
    else {
      sendJson(404, {
        error: { code: 404, message: `No route ${method} ${target}`, status: 'NOT_FOUND' },
      });
      return;
    }
    // Socket-level faults need the raw connection, so they are decided here for REST.
    const action = faults.pick({ method: rpc, path: `${method} ${target}`, uploadType: undefined });
    const body = await readBody(req);
    let parsed: Record<string, unknown> = {};
    try {
      if (body.length) parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    } catch {
      sendError(new LoggingApiError(Code.INVALID_ARGUMENT, 'Invalid JSON payload received.'));
      return;
    }
    const work = (): unknown => {
      if (rpc === 'WriteLogEntries') {
        const entries = (parsed.entries as RestEntry[] | undefined) ?? [];
        store.write({
          logName: parsed.logName as string | undefined,
          resource: parsed.resource as EntryInput['resource'],
          labels: parsed.labels as Record<string, string> | undefined,
          entries: entries.map(fromRestEntry),
          partialSuccess: parsed.partialSuccess as boolean | undefined,
          dryRun: parsed.dryRun as boolean | undefined,
          requestBytes: body.length,
        });
        return {};
      }
      if (rpc === 'ListLogEntries') {
        const r = store.list({
          resourceNames: (parsed.resourceNames as string[] | undefined) ?? [],
          filter: parsed.filter as string | undefined,
          orderBy: parsed.orderBy as string | undefined,
          pageSize: parsed.pageSize === undefined ? undefined : Number(parsed.pageSize),
          pageToken: parsed.pageToken as string | undefined,
        });
        return {
          entries: r.entries.map(toRestEntry),
          ...(r.nextPageToken ? { nextPageToken: r.nextPageToken } : {}),
        };
      }
      store.deleteLog(decodeURIComponent(target.slice('/v2/'.length)));
      return {};
    };
    const entries =
      rpc === 'WriteLogEntries' ? ((parsed.entries as unknown[]) ?? []).length : undefined;
    const plan = planFault(action);
    const record = (code: number) =>
      log({
        transport: 'rest',
        method: rpc,
        code,
        ...(plan ? { fault: plan.label } : {}),
        ...(entries !== undefined ? { entries } : {}),
      });
    if (action && 'delayMs' in action) await sleep(action.delayMs);
    if (action && 'reset' in action) {
      if (action.resetAfterCommit) {
        try {
          work();
        } catch {
          // The answer is lost either way.
        }
      }
      record(Code.UNAVAILABLE);
      req.socket.destroy();
      return;
    }
    if (plan?.before) {
      record(plan.before.code);
      sendError(new LoggingApiError(plan.before.code, plan.before.message));
      return;
    }
    try {
      const result = work();
      record(Code.OK);
      sendJson(200, result);
    } catch (err) {
      record(err instanceof LoggingApiError ? err.code : Code.INTERNAL);
      sendError(err);
    }
  }

  await new Promise<void>((resolve) => httpServer.listen(options.restPort ?? 0, host, resolve));
  const restPort = (httpServer.address() as AddressInfo).port;

  return {
    host,
    port: grpcPort,
    url: `${host}:${grpcPort}`,
    restPort,
    restUrl: `http://${host}:${restPort}`,
    faults,
    store,
    requestLog,
    async close() {
      grpcServer.forceShutdown();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
}
