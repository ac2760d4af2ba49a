/**
 * The same service over REST, as `@google-cloud/logging` sends it with `fallback: 'rest'`:
 * `POST /v2/entries:write`, `POST /v2/entries:list`, `DELETE /v2/{logName}`. Errors carry
 * Google's JSON error body; injected resets are real socket resets.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FaultInjector } from '../shared/fault-injector.js';
import { readBody } from '../shared/http-exchange.js';
import type { RunCall } from './calls.js';
import { Code, type EntryInput, type EntryStore, LoggingApiError } from './entry-store.js';
import { fromRestEntry, type RestEntry, toRestEntry } from './messages.js';

/** The HTTP status (and status name) a gRPC code is sent as. */
const HTTP_OF: Record<number, [number, string]> = {
  [Code.INVALID_ARGUMENT]: [400, 'INVALID_ARGUMENT'],
  [Code.NOT_FOUND]: [404, 'NOT_FOUND'],
  [Code.PERMISSION_DENIED]: [403, 'PERMISSION_DENIED'],
  [Code.RESOURCE_EXHAUSTED]: [429, 'RESOURCE_EXHAUSTED'],
  [Code.INTERNAL]: [500, 'INTERNAL'],
  [Code.UNAVAILABLE]: [503, 'UNAVAILABLE'],
  [Code.DEADLINE_EXCEEDED]: [504, 'DEADLINE_EXCEEDED'],
};

/** The RPC a REST request stands for, if any. */
function rpcOf(method: string, pathname: string): string | undefined {
  if (method === 'POST' && pathname === '/v2/entries:write') return 'WriteLogEntries';
  if (method === 'POST' && pathname === '/v2/entries:list') return 'ListLogEntries';
  if (method === 'DELETE' && /^\/v2\/projects\/[^/]+\/logs\/.+$/.test(pathname)) {
    return 'DeleteLog';
  }
  return undefined;
}

export function restHandler(store: EntryStore, faults: FaultInjector, run: RunCall) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const pathname = new URL(req.url ?? '/', 'http://emulator').pathname;
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
      const message = err instanceof Error ? err.message : String(err);
      sendJson(status, { error: { code: status, message, status: name } });
    };
    const rpc = rpcOf(method, pathname);
    if (!rpc) {
      sendJson(404, {
        error: { code: 404, message: `No route ${method} ${pathname}`, status: 'NOT_FOUND' },
      });
      return;
    }
    const action = faults.pick({ method: rpc, path: `${method} ${pathname}` });
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      return; // the client went away
    }
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
      store.deleteLog(decodeURIComponent(pathname.slice('/v2/'.length)));
      return {};
    };
    const entries =
      rpc === 'WriteLogEntries' ? ((parsed.entries as unknown[]) ?? []).length : undefined;
    try {
      sendJson(200, await run({ transport: 'rest', method: rpc, action, entries, work }));
    } catch (err) {
      // A reset loses the answer, before or after the work: the client sees the socket drop.
      if (action && 'reset' in action) req.socket.destroy();
      else sendError(err);
    }
  };
}
