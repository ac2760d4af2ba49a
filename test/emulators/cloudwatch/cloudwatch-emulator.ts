/**
 * A wire-level emulator of Amazon CloudWatch Logs (AWS JSON 1.1), enough for
 * `@aws-sdk/client-cloudwatch-logs` and awscli v2 (`aws --endpoint-url URL logs …`, checked in
 * test/cloudwatch/cloudwatch-awscli.test.ts): `POST /` with
 * `X-Amz-Target: Logs_20140328.<Operation>` and `Content-Type: application/x-amz-json-1.1`.
 * Operations: CreateLogGroup, CreateLogStream, DescribeLogStreams, PutLogEvents, GetLogEvents,
 * FilterLogEvents, DeleteLogStream, DeleteLogGroup (see limits.ts for their limits).
 *
 * A SigV4 `Authorization` header is required but its signature is not checked; an access key
 * listed in `deniedAccessKeys` is refused with UnrecognizedClientException, as AWS refuses an
 * unknown key.
 *
 * Faults (the shared FaultInjector) are decided per request. Every request's path is
 * `/`, so a rule's `match.path` is tested against the operation name instead (`'PutLogEvents'`).
 * The injector's statuses become CloudWatch's own errors: 429 → HTTP 400 ThrottlingException
 * (the JSON protocol sends throttling as a client error), 500 / 503 → ServiceUnavailableException,
 * 408 → RequestTimeoutException. `reset` drops the connection before anything is done;
 * `resetAfterCommit` carries the request out and drops the answer. The shared `/_emulator/…`
 * routes (../shared/faults.ts) set them from another process.
 * Reference: https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { serveEmulator } from '../shared/emulator-server.js';
import { FaultInjector } from '../shared/fault-injector.js';
import { applyHttpFault, faultControl, isControlPath } from '../shared/faults.js';
import {
  answeredStatus,
  BodyTooLargeError,
  cannotAnswer,
  drain,
  type HttpExchange,
  headerValue,
  readBody,
  writeAnswer,
} from '../shared/http-exchange.js';
import { appendBounded, whenAnswered } from '../shared/request-log.js';
import { CloudWatchApiError, errors } from './api-error.js';
import { LogService } from './log-service.js';
import type { StoredEvent } from './stream-state.js';

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
  /** The last 10,000 requests, oldest first (control requests under `/_emulator` excluded). */
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

/** Far above the 1 MiB PutLogEvents payload; JSON escaping may triple a message on the wire. */
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const TARGET_PREFIX = 'Logs_20140328.';
const JSON_TYPE = 'application/x-amz-json-1.1';

export async function startCloudWatchEmulator(
  options: CloudWatchEmulatorOptions = {},
): Promise<CloudWatchEmulator> {
  const service = new LogService({
    region: options.region ?? 'us-east-1',
    accountId: options.accountId ?? '000000000000',
    ...(options.now ? { now: options.now } : {}),
  });
  const denied = new Set(options.deniedAccessKeys ?? []);
  const faults = new FaultInjector();
  const requestLog: CloudWatchRequestLogEntry[] = [];
  const closing = new AbortController();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ex: HttpExchange = { req, res };
    const pathname = new URL(req.url ?? '/', 'http://emulator').pathname;
    if (isControlPath(pathname)) return control(ex, pathname);
    const target = headerValue(req, 'x-amz-target');
    const operation = target?.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : '?';
    const entry: CloudWatchRequestLogEntry = { operation, status: 0 };
    whenAnswered(res, () => {
      entry.status = answeredStatus(ex);
      appendBounded(requestLog, entry);
    });
    const sendError = (err: CloudWatchApiError) => {
      entry.errorType = err.type;
      send(ex, err.status, err, { 'x-amzn-ErrorType': err.type });
    };

    try {
      const fault = faults.pick({ method: req.method ?? 'POST', path: operation });
      const answerStatus = (status: number) => sendError(faultError(status));
      if (await applyHttpFault(ex, fault, answerStatus, closing.signal)) return;
      const body = await readBody(req, MAX_BODY_BYTES);
      if (req.method !== 'POST') throw errors.unknownOperation(`${req.method} ${req.url}`);
      const auth = headerValue(req, 'authorization');
      if (!auth?.startsWith('AWS4-HMAC-SHA256 ')) throw errors.missingAuth();
      const accessKey = /Credential=([^/,\s]+)\//.exec(auth)?.[1];
      if (accessKey !== undefined && denied.has(accessKey)) throw errors.unrecognizedClient();
      if (!headerValue(req, 'content-type')?.startsWith(JSON_TYPE)) {
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
      send(ex, 200, service.call(operation, input as Record<string, unknown>));
    } catch (err) {
      if (cannotAnswer(err, ex, closing.signal)) return;
      if (err instanceof BodyTooLargeError) return sendError(errors.serialization(err.message));
      if (err instanceof CloudWatchApiError) return sendError(err);
      sendError(new CloudWatchApiError('ServiceUnavailableException', String(err), 500));
    }
  }

  /** `/_emulator/…`: the shared fault and request-log routes; errors as the service's own. */
  async function control(ex: HttpExchange, pathname: string): Promise<void> {
    const route = `${ex.req.method ?? 'GET'} ${pathname.replace(/\/+$/, '')}`;
    try {
      const readJson = async () => {
        const input = JSON.parse((await readBody(ex.req, MAX_BODY_BYTES)).toString() || '{}');
        if (typeof input === 'object' && input !== null) return input as Record<string, unknown>;
        throw errors.serialization('Request body must be a JSON object');
      };
      const answer = await faultControl(
        ex,
        route,
        { faults, requestLog },
        readJson,
        errors.invalid,
      );
      if (!answer) {
        await drain(ex.req);
        throw errors.unknownOperation(route);
      }
      if (answer.body === undefined) writeAnswer(ex, answer.status, {});
      else send(ex, answer.status, answer.body);
    } catch (err) {
      if (ex.req.socket.destroyed) return;
      const apiError = err instanceof CloudWatchApiError ? err : errors.serialization(String(err));
      send(ex, apiError.status, apiError, { 'x-amzn-ErrorType': apiError.type });
    }
  }

  return {
    ...(await serveEmulator(handle, options, { faults, requestLog, closing })),
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

/** A JSON 1.1 answer; an error's body is its `{__type, message}`. */
function send(
  ex: HttpExchange,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  writeAnswer(
    ex,
    status,
    { 'Content-Type': JSON_TYPE, 'x-amzn-RequestId': randomUUID(), ...headers },
    JSON.stringify(body),
  );
}
