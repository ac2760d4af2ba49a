/**
 * One HTTP request and its answer, as every HTTP emulator handles them: bodies read with
 * bounded memory, answers that honour the injected faults acting on answers (a lost answer, a
 * body cut short), and the status the request log records.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface HttpExchange {
  req: IncomingMessage;
  res: ServerResponse;
  /** `resetAfterCommit`: carry the request out, then drop the connection instead of answering. */
  dropAnswer?: boolean;
  /** `truncateBodyAfter`: send only this many body bytes, then drop the connection. */
  truncateAfter?: number;
}

/** The client went away mid-request; there is nobody to answer. */
export class ClientAbortedError extends Error {
  constructor(options?: { cause?: unknown }) {
    super('client aborted the request', options);
    this.name = 'ClientAbortedError';
  }
}

/** A request body over the emulator's limit; each emulator answers it in its own words. */
export class BodyTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`Request body exceeds ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

export async function drain(req: IncomingMessage): Promise<void> {
  if (req.complete) return;
  try {
    for await (const _ of req) {
      // discard
    }
  } catch (cause) {
    throw new ClientAbortedError({ cause });
  }
}

/** The whole body; over `limit` bytes it throws BodyTooLargeError once the body has been read. */
export async function readBody(
  req: IncomingMessage,
  limit = Number.POSITIVE_INFINITY,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    // Keep reading past the limit (without keeping it): leaving the loop early would destroy
    // the socket before the emulator can answer.
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size <= limit) chunks.push(chunk as Buffer);
    }
  } catch (cause) {
    throw new ClientAbortedError({ cause });
  }
  if (size > limit) throw new BodyTooLargeError(limit);
  return Buffer.concat(chunks);
}

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Sends status, headers (Content-Length added) and body, unless the answer is to be lost; with
 * `truncateAfter` only that many body bytes leave before the connection drops.
 */
export function writeAnswer(
  ex: HttpExchange,
  status: number,
  headers: Record<string, string | number>,
  body?: string | Buffer,
  statusMessage?: string,
): void {
  const { req, res } = ex;
  // A client that went away while we worked gets no answer; the log then says 0, not a status
  // nobody received (the request's effects stand, as on a real server).
  if (ex.dropAnswer || req.socket.destroyed) {
    dropConnection(ex);
    return;
  }
  const payload = body === undefined ? undefined : Buffer.from(body);
  const all: Record<string, string | number> = { ...headers };
  if (payload !== undefined) all['Content-Length'] = payload.length;
  else if (status !== 204 && status !== 304) all['Content-Length'] = 0;
  if (statusMessage) res.writeHead(status, statusMessage, all);
  else res.writeHead(status, all);
  if (ex.truncateAfter !== undefined && payload && ex.truncateAfter < payload.length) {
    res.flushHeaders();
    if (ex.truncateAfter > 0) res.write(payload.subarray(0, ex.truncateAfter));
    endSocketAfterFlush(res.socket);
    return;
  }
  // HEAD answers carry the headers of the GET but no body.
  res.end(req.method === 'HEAD' ? undefined : payload);
}

/** Kills the connection now: the client sees a reset, no status line. */
export function dropConnection(ex: HttpExchange): void {
  ex.dropAnswer = true;
  ex.req.socket.destroy();
}

/** Closes after what was written so far has left: the client sees a body cut short. */
export function endSocketAfterFlush(socket: Socket | null): void {
  if (!socket) return;
  socket.once('finish', () => socket.destroy());
  socket.end();
}

/** The status a client received: 0 when the connection was dropped without an answer. */
export function answeredStatus(ex: HttpExchange): number {
  return ex.dropAnswer || !ex.res.headersSent ? 0 : ex.res.statusCode;
}

/**
 * Whether a request that failed gets no error answer: the client went away, the emulator is
 * closing, or an answer is already under way (its connection is then cut, so the client sees a
 * broken answer rather than a wrong one).
 */
export function cannotAnswer(err: unknown, ex: HttpExchange, closing: AbortSignal): boolean {
  if (err instanceof ClientAbortedError || ex.req.socket.destroyed || closing.aborted) return true;
  if (ex.res.headersSent) {
    ex.res.destroy();
    return true;
  }
  return false;
}
