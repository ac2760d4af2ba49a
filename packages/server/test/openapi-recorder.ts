import { appendFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setImmediate as tick } from 'node:timers/promises';
import { type AppDeps, createApp, openApiDocument, type TasklogApp } from '@tasklog/server';
import { afterAll, afterEach, expect } from 'vitest';
import { type Exchange, ResponseChecker } from './openapi-check.js';

/**
 * Every answer of every proxy app the server tests start is judged by the OpenAPI document: the
 * fixtures build their apps with `createCheckedApp`, which records each response as the server
 * writes it; a test during which an answer did not match fails in the afterEach below. (The
 * agent's API is another one: its apps are not checked.)
 */

/** Bodies kept whole up to this size (JSON answers are far smaller); of larger ones, both ends. */
const HEAD_BYTES = 8 << 20;
const TAIL_BYTES = 256 << 10;
/** Body types whose bytes the checker reads; of the others (logs, pages) only headers count. */
const READ_BODY = /json|event-stream/;

const checker = new ResponseChecker(openApiDocument);
let problems: string[] = [];
const counts = { responses: 0, unlisted: 0, records: 0, unanswered: 0 };

/** `createApp`, with every response of the app checked against the OpenAPI document. */
export function createCheckedApp(deps: AppDeps): TasklogApp {
  const app = createApp(deps);
  type Handle = (req: IncomingMessage, res: ServerResponse, next?: unknown) => void;
  const express = app as unknown as { handle: Handle };
  const handle = express.handle.bind(app);
  // Express's app function calls `app.handle` for every request: the one place to see them all.
  express.handle = (req, res, next) => {
    record(req, res);
    handle(req, res, next);
  };
  return app;
}

function record(req: IncomingMessage, res: ServerResponse): void {
  const method = req.method ?? 'GET';
  const path = (req.url ?? '/').split('?')[0]!;
  const head: Buffer[] = [];
  let headBytes = 0;
  let tail: Buffer[] = [];
  let tailBytes = 0;
  let truncated = false;
  let read: boolean | undefined;
  const take = (chunk: unknown, encoding: unknown) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
    read ??= READ_BODY.test(String(res.getHeader('content-type') ?? ''));
    if (!read) return;
    const buf =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        : Buffer.from(chunk as Uint8Array);
    if (!truncated && headBytes + buf.length <= HEAD_BYTES) {
      head.push(buf);
      headBytes += buf.length;
      return;
    }
    truncated = true;
    tail.push(buf);
    tailBytes += buf.length;
    while (tail.length > 1 && tailBytes - tail[0]!.length >= TAIL_BYTES) {
      tailBytes -= tail[0]!.length;
      tail = tail.slice(1);
    }
  };
  const write = res.write;
  const end = res.end;
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    take(chunk, rest[0]);
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof res.write;
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    take(chunk, rest[0]);
    return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
  } as typeof res.end;
  // One listener more than the app's own: the app keeps its budget before Node's leak warning.
  res.setMaxListeners(res.getMaxListeners() + 1);
  res.once('close', () => {
    if (!res.headersSent) {
      counts.unanswered++;
      return;
    }
    const exchange: Exchange = {
      method,
      path,
      status: res.statusCode,
      headers: res.getHeaders(),
      body: Buffer.concat(head),
      tail: Buffer.concat(tail),
      truncated,
      finished: res.writableFinished,
    };
    const verdict = checker.check(exchange);
    counts.responses++;
    counts.records += verdict.records;
    if (verdict.operation === 'unlisted') counts.unlisted++;
    for (const p of verdict.problems) {
      problems.push(`${method} ${path} → ${res.statusCode} (${verdict.operation}): ${p}`);
    }
  });
}

let testFile: string | undefined;

/** Fails the test during which an answer broke the document. */
async function report(): Promise<void> {
  // Responses cut off when a fixture closed report their 'close' a tick later.
  await tick();
  await tick();
  const found = problems;
  problems = [];
  if (found.length > 0) {
    throw new Error(`answers that do not match the OpenAPI document:\n${found.join('\n')}`);
  }
}

afterEach(async () => {
  testFile ??= expect.getState().testPath;
  await report();
});

afterAll(async () => {
  await report();
  // TASKLOG_OPENAPI_STATS=<file>: one line per test file, how many answers were checked.
  const stats = process.env.TASKLOG_OPENAPI_STATS;
  if (stats) appendFileSync(stats, `${JSON.stringify({ file: testFile, ...counts })}\n`);
});
