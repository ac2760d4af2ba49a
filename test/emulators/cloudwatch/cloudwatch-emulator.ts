/**
 * A wire-level emulator of Amazon CloudWatch Logs (AWS JSON 1.1), enough for
 * `@aws-sdk/client-cloudwatch-logs` and awscli v2 (`aws --endpoint-url URL logs …`, checked in
 * test/cloudwatch/cloudwatch-awscli.test.ts): `POST /` with
 * `X-Amz-Target: Logs_20140328.<Operation>` and `Content-Type: application/x-amz-json-1.1`.
 * Operations: CreateLogGroup, CreateLogStream, DescribeLogStreams, PutLogEvents, GetLogEvents,
 * FilterLogEvents, DeleteLogStream, DeleteLogGroup (see log-service.ts for their limits).
 *
 * A SigV4 `Authorization` header is required but its signature is not checked; an access key
 * listed in `deniedAccessKeys` is refused with UnrecognizedClientException, as AWS refuses an
 * unknown key.
 *
 * Faults (the GCS emulator's FaultInjector) are decided per request. Every request's path is
 * `/`, so a rule's `match.path` is tested against the operation name instead (`'PutLogEvents'`).
 * The injector's statuses become CloudWatch's own errors: 429 → HTTP 400 ThrottlingException
 * (the JSON protocol sends throttling as a client error), 500 / 503 → ServiceUnavailableException,
 * 408 → RequestTimeoutException. `reset` drops the connection before anything is done;
 * `resetAfterCommit` carries the request out and drops the answer.
 * Reference: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultInjector } from '../gcs/fault-injector.js';
import { CloudWatchApiError, errors } from './api-error.js';
import { LogService, type StoredEvent } from './log-service.js';

export interface CloudWatchEmulatorOptions {
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Port; default 0 (any free port). */
  port?: number;
  /** Region in ARNs; default `us-east-1`. */
  region?: string;
  /** Account id in ARNs; default `000000000000`. */
  accountId?: string;
  /** Access key ids answered with UnrecognizedClientException. */
  deniedAccessKeys?: readonly string[];
  /** The service's clock in ms (decides which events are too old or too new); default Date.now. */
  now?: () => number;
}

export interface CloudWatchRequestLogEntry {
  /** The operation, e.g. `PutLogEvents` (`?` when the target header was missing). */
  operation: string;
  /** HTTP status sent; 0 when the connection was dropped without an answer. */
  status: number;
  /** `__type` of an error answer. */
  errorType?: string;
}

export interface CloudWatchEmulator {
  /** `http://HOST:PORT`, to pass as the client's `endpoint`. */
  readonly url: string;
  readonly port: number;
  readonly faults: FaultInjector;
  /** The last 10,000 requests, oldest first. */
  readonly requestLog: CloudWatchRequestLogEntry[];
  /** Creates a log group; a no-op when it exists. */
  createLogGroup(name: string): void;
  /** The raw events a stream holds, in stored order (duplicates and all). */
  events(group: string, stream: string): readonly StoredEvent[];
  /** Names of a group's streams, sorted. */
  streamNames(group: string): string[];
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

const REQUEST_LOG_LIMIT = 10_000;
/** Far above the 1 MiB PutLogEvents payload; JSON escaping may triple a message on the wire. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const TARGET_PREFIX = 'Logs_20140328.';
const JSON_TYPE = 'application/x-amz-json-1.1';

export async function startCloudWatchEmulator(
  options: CloudWatchEmulatorOptions = {},
): Promise<CloudWatchEmulator> {
  const host = options.host ?? '127.0.0.1';
  const service = new LogService({
    region: options.region ?? 'us-east-1',
    accountId: options.accountId ?? '000000000000',
    ...(options.now ? { now: options.now } : {}),
  });
  const denied = new Set(options.deniedAccessKeys ?? []);
  const faults = new FaultInjector();
  const requestLog: CloudWatchRequestLogEntry[] = [];
  const closing = new AbortController();

  const server: Server = createServer((req, res) => {
    void handle(req, res);
  });
  server.requestTimeout = 0;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const target = header(req, 'x-amz-target');
    const operation = target?.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : '?';
    const entry: CloudWatchRequestLogEntry = { operation, status: 0 };
    let dropAnswer = false;
    let truncateAfter: number | undefined;
    let logged = false;
    const log = () => {
      if (logged) return;
      logged = true;
      entry.status = dropAnswer || !res.headersSent ? 0 : res.statusCode;
      requestLog.push(entry);
      if (requestLog.length > REQUEST_LOG_LIMIT) {
        requestLog.splice(0, requestLog.length - REQUEST_LOG_LIMIT);
      }
    };
    res.once('finish', log);
    res.once('close', log);

    const send = (status: number, body: unknown, errorType?: string) => {
      if (dropAnswer || req.socket.destroyed) {
        req.socket.destroy();
        return;
      }
      const payload = Buffer.from(JSON.stringify(body));
      const headers: Record<string, string | number> = {
        'Content-Type': JSON_TYPE,
        'Content-Length': payload.length,
        'x-amzn-RequestId': randomUUID(),
      };
      if (errorType) {
        headers['x-amzn-ErrorType'] = errorType;
        entry.errorType = errorType;
      }
      res.writeHead(status, headers);
      if (truncateAfter !== undefined && truncateAfter < payload.length) {
        res.flushHeaders();
        if (truncateAfter > 0) res.write(payload.subarray(0, truncateAfter));
        const socket = res.socket;
        if (socket) socket.end(() => socket.destroy());
        return;
      }
      res.end(payload);
    };
    const sendError = (err: CloudWatchApiError) => send(err.status, err, err.type);

    try {
      const fault = faults.pick({
        method: req.method ?? 'POST',
        path: operation,
        uploadType: undefined,
      });
      if (fault) {
        if ('delayMs' in fault) {
          await sleep(fault.delayMs, undefined, { signal: closing.signal });
        } else if ('status' in fault) {
          await readBody(req);
          return sendError(faultError(fault.status));
        } else if ('reset' in fault) {
          if (fault.resetAfterCommit) dropAnswer = true;
          else {
            if (fault.afterBody) await readBody(req);
            req.socket.destroy();
            return;
          }
        } else {
          truncateAfter = fault.truncateBodyAfter;
        }
      }
      const body = await readBody(req);
      if (req.method !== 'POST') throw errors.unknownOperation(`${req.method} ${req.url}`);
      const auth = header(req, 'authorization');
      if (!auth?.startsWith('AWS4-HMAC-SHA256 ')) throw errors.missingAuth();
      const accessKey = /Credential=([^/,\s]+)\//.exec(auth)?.[1];
      if (accessKey !== undefined && denied.has(accessKey)) throw errors.unrecognizedClient();
      if (!header(req, 'content-type')?.startsWith(JSON_TYPE)) {
        throw errors.serialization(`Content-Type must be ${JSON_TYPE}`);
      }
      if (operation === '?') throw errors.unknownOperation(target ?? '(no X-Amz-Target)');
      let input: unknown;
      try {
        input = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
      } catch {
        throw errors.serialization('Request body is not valid JSON');
      }
      if (typeof input !== 'object' || input === null || Array.isArray(input)) {
        throw errors.serialization('Request body must be a JSON object');
      }
      send(200, service.call(operation, input as Record<string, unknown>));
    } catch (err) {
      if (req.socket.destroyed || closing.signal.aborted) return;
      if (err instanceof BodyTooLargeError) return sendError(errors.serialization(err.message));
      if (err instanceof CloudWatchApiError) return sendError(err);
      sendError(new CloudWatchApiError('ServiceUnavailableException', String(err), 500));
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${host}:${address.port}`;

  return {
    url,
    port: address.port,
    faults,
    requestLog,
    createLogGroup(name) {
      try {
        service.createLogGroup({ logGroupName: name });
      } catch (err) {
        if (!(err instanceof CloudWatchApiError && err.type === 'ResourceAlreadyExistsException')) {
          throw err;
        }
      }
    },
    events: (group, stream) => service.events(group, stream),
    streamNames: (group) => service.streamNames(group),
    async close() {
      closing.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function faultError(status: number): CloudWatchApiError {
  switch (status) {
    case 429:
      return errors.throttled();
    case 408:
      return errors.requestTimeout();
    default:
      return errors.unavailable(status);
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

class BodyTooLargeError extends Error {}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      req.resume();
      throw new BodyTooLargeError(`Request body exceeds ${MAX_BODY_BYTES} bytes`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}
