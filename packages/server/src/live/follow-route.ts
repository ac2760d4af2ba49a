import type { AttemptKey, Catalog } from '@tasklog/core';
import {
  BackendUnavailableError,
  formatAttempt,
  InvalidInputError,
  NotFoundError,
  OffsetOutOfRangeError,
} from '@tasklog/core';
import type { Request, Response } from 'express';
import { clientGoneSignal } from '../client-gone.js';
import { writeOrCut } from '../hardening.js';
import { NdjsonEncoder, type PushResult } from '../ndjson.js';
import type { StoreResolver } from '../store-resolver.js';
import { type FollowTimings, followLog } from './follow-log.js';
import type { LiveHub } from './live-hub.js';

export const EVENT_STREAM_TYPE = 'text/event-stream';

export type FollowFormat = 'text' | 'ndjson' | 'sse';

export interface FollowDeps {
  catalog: Catalog;
  stores: StoreResolver;
  /** The attempt's path as the agent serves it, rendered from the key by the caller. */
  relativePath: string;
  hub?: LiveHub;
  timings?: FollowTimings;
  /** SSE comment heartbeat interval; default 15000 ms. */
  heartbeatMs?: number;
  /** Caps on followers, in all and per attempt; none without it. */
  limits?: FollowerLimits;
  /** A follower that takes no byte for this long is cut off; default 30,000 ms. */
  sendTimeoutMs?: number;
}

/**
 * Places for followers: a follow holds one (in all, and of its attempt) while it streams, so a
 * crowd, or one client opening thousands of follows, cannot exhaust the proxy. Full: 503.
 */
export class FollowerLimits {
  #total = 0;
  readonly #perAttempt = new Map<string, number>();

  constructor(
    readonly maxTotal: number,
    readonly maxPerAttempt: number,
    /** Told of each follower refused, and by which limit (metrics). */
    private readonly onRefused?: (limit: 'total' | 'per_attempt') => void,
  ) {}

  /** Followers holding a place now. */
  get following(): number {
    return this.#total;
  }

  /** Takes a place for a follower of the attempt `id`; returns its release. */
  enter(id: string): () => void {
    const mine = this.#perAttempt.get(id) ?? 0;
    if (this.#total >= this.maxTotal || mine >= this.maxPerAttempt) {
      this.onRefused?.(this.#total >= this.maxTotal ? 'total' : 'per_attempt');
      throw new BackendUnavailableError(
        this.#total >= this.maxTotal
          ? 'this server follows as many logs as it may (server.max_followers); try again later'
          : 'this attempt has as many followers as it may (server.max_followers_per_attempt); try again later',
      );
    }
    this.#total++;
    this.#perAttempt.set(id, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      const left = (this.#perAttempt.get(id) ?? 1) - 1;
      if (left > 0) this.#perAttempt.set(id, left);
      else this.#perAttempt.delete(id);
    };
  }
}

/** Thrown inside a follow when the client stopped reading and was cut off. */
class ClientCutOff extends Error {}

/** Whether `accept` names text/event-stream (without q=0). */
export function acceptsEventStream(accept: string | undefined): boolean {
  if (!accept) return false;
  return accept.split(',').some((part) => {
    const [type, ...params] = part.split(';').map((s) => s.trim().toLowerCase());
    return type === EVENT_STREAM_TYPE && !params.some((p) => /^q=0(\.0*)?$/.test(p));
  });
}

/** Each push's framing per format, computed once for all the followers that share the push. */
const framings = new WeakMap<PushResult, Partial<Record<'ndjson' | 'sse', Framed>>>();

interface Framed {
  /** Bytes, so that the same piece is not encoded to UTF-8 again for every follower. */
  body: Buffer;
  /** Log offset just past the last record; undefined when there is none. */
  end: number | undefined;
}

/** Encoder output as the response body of `format`, and where it ends in the log. */
function framed(pushed: PushResult, format: 'ndjson' | 'sse'): Framed {
  const known = framings.get(pushed) ?? {};
  const hit = known[format];
  if (hit) return hit;
  let body = '';
  let end: number | undefined;
  for (const r of recordLines(pushed.text)) {
    end = r.end;
    if (format === 'ndjson') body += `${r.line}\n`;
    else body += `id: ${r.end}\nevent: ${r.eof ? 'eof' : 'log'}\ndata: ${r.line}\n\n`;
  }
  const result = { body: Buffer.from(body), end };
  known[format] = result;
  framings.set(pushed, known);
  return result;
}

/** Splits encoder output into record lines, each with the log offset just past its bytes. */
function recordLines(text: string): { line: string; end: number; eof: boolean }[] {
  const out: { line: string; end: number; eof: boolean }[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const r = JSON.parse(line) as { offset: number; text?: string; bytes?: string; eof?: boolean };
    const len =
      r.text !== undefined
        ? Buffer.byteLength(r.text, 'utf8')
        : r.bytes !== undefined
          ? Buffer.from(r.bytes, 'base64').length
          : 0;
    out.push({ line, end: r.offset + len, eof: r.eof === true });
  }
  return out;
}

/**
 * Serves `?follow=true`: the log from `offset` (or SSE `Last-Event-ID`) until it is complete,
 * live from the worker's agent while the attempt runs and from the archive otherwise.
 *
 * - text: bytes only; a normal end of the body is the end of the log. `X-Tasklog-Live` says at
 *   the start whether a live source will be tried; a later loss cannot be expressed.
 * - NDJSON: `{offset, text}` records, `{"event":"source-lost","offset":n}` (n: bytes received),
 *   `{"event":"lagging","offset":n}` (n: where to reconnect; then the body ends),
 *   `{"event":"abandoned","offset":n}` (the writer's heartbeat stopped; `eof` follows), and the
 *   encoder's `{"offset":end,"eof":true,"complete":…}` last.
 * - SSE: `event: log` with the same records as data, `source-lost`, `abandoned`, `lagging`, `eof`; every
 *   event's `id` is the byte offset just past what was sent, so `Last-Event-ID` resumes exactly.
 */
export async function serveFollow(
  req: Request,
  res: Response,
  key: AttemptKey,
  requestedOffset: number | undefined,
  format: FollowFormat,
  deps: FollowDeps,
): Promise<void> {
  let offset = requestedOffset ?? 0;
  const lastEventId = format === 'sse' ? req.get('last-event-id') : undefined;
  if (lastEventId !== undefined && lastEventId !== '') {
    if (!/^\d{1,15}$/.test(lastEventId)) {
      throw new InvalidInputError('Last-Event-ID must be a byte offset');
    }
    offset = Number(lastEventId);
  }

  const signal = clientGoneSignal(res);

  const record = await deps.catalog.get(key);
  const store = await deps.stores.forUrl(record?.storeUrl);
  const stat = await store.stat(key, { signal });
  if (!record && !stat) throw new NotFoundError(`unknown attempt ${formatAttempt(key)}`);
  const live = Boolean(deps.hub && record?.state === 'running' && record.agentUrl);
  if (!live && stat?.complete && offset > stat.size) {
    res.setHeader('Content-Range', `bytes */${stat.size}`);
    throw new OffsetOutOfRangeError(offset, stat.size);
  }

  const contentType =
    format === 'sse'
      ? EVENT_STREAM_TYPE
      : format === 'ndjson'
        ? 'application/x-ndjson'
        : 'text/plain; charset=utf-8';
  const headers = {
    Vary: 'Accept',
    'Cache-Control': 'no-store',
    'Content-Type': contentType,
    'X-Content-Type-Options': 'nosniff',
    'X-Tasklog-Offset': String(offset),
    'X-Tasklog-Live': String(live),
    // Tells nginx-style proxies not to buffer a body that is meant to arrive as it is written.
    'X-Accel-Buffering': 'no',
  };
  if (req.method === 'HEAD') {
    res.status(200).set(headers).end();
    return;
  }
  // Before any header is set: a follower refused (503) gets a JSON error, not one labelled as
  // the log's text or event stream.
  const release = deps.limits?.enter(deps.relativePath);
  res.once('close', () => release?.());
  res.status(200).set(headers);
  res.flushHeaders();

  const sendTimeoutMs = deps.sendTimeoutMs ?? 30_000;
  const send = async (data: string | Uint8Array): Promise<void> => {
    if (!(await writeOrCut(res, data, sendTimeoutMs, signal))) throw new ClientCutOff();
  };
  const encoder = format === 'text' ? undefined : new NdjsonEncoder(offset);
  // End of what the client has been sent as whole records (NDJSON/SSE) or bytes (text).
  let sent = offset;
  const sendRecords = async (pushed: PushResult): Promise<void> => {
    const { body, end } = framed(pushed, format === 'sse' ? 'sse' : 'ndjson');
    if (end !== undefined) sent = end;
    if (body.length > 0) await send(body);
  };
  const sendEvent = async (event: string, at: number): Promise<void> => {
    const data = JSON.stringify({ event, offset: at });
    await send(
      format === 'ndjson' ? `${data}\n` : `id: ${sent}\nevent: ${event}\ndata: ${data}\n\n`,
    );
  };

  let heartbeat: NodeJS.Timeout | undefined;
  if (format === 'sse') {
    heartbeat = setInterval(() => {
      if (!res.writableEnded && !res.destroyed) res.write(': heartbeat\n\n');
    }, deps.heartbeatMs ?? 15_000);
    await send('retry: 3000\n\n').catch(() => undefined);
  }
  try {
    const events = followLog({
      ...deps.timings,
      key,
      catalog: deps.catalog,
      store,
      hub: deps.hub,
      relativePath: deps.relativePath,
      offset,
      signal,
    });
    for await (const ev of events) {
      if (ev.type === 'bytes') {
        if (encoder) await sendRecords(encoder.pushShared(ev.bytes));
        else {
          await send(ev.bytes);
          sent += ev.bytes.length;
        }
      } else if (ev.type === 'source-lost' || ev.type === 'abandoned') {
        if (encoder) await sendEvent(ev.type, ev.offset);
      } else if (ev.type === 'lagging') {
        // Text cannot say why it ends, so the body is cut: the client must not take it as whole.
        if (!encoder) res.destroy();
        else {
          await sendEvent('lagging', sent);
          res.end();
        }
        return;
      } else {
        if (encoder) await sendRecords({ text: encoder.end(ev.complete) });
        res.end();
        return;
      }
    }
  } catch (err) {
    if (err instanceof ClientCutOff) {
      req.log?.info({ key, sendTimeoutMs }, 'a follower took no bytes for too long; cut off');
      return;
    }
    if (signal.aborted) {
      req.log?.debug({ key }, 'client went away while following the log');
      return;
    }
    throw err;
  } finally {
    clearInterval(heartbeat);
  }
}
