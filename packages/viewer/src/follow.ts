import { type ApiError, type AttemptRef, authHeaders, errorOf, logPath, mapQuery } from './api.js';
import type { LogLine } from './log-lines.js';
import { SseParser } from './sse.js';

export interface FollowHandlers {
  /** Whole lines (or pieces of a line longer than the server's record limit). */
  onLines(lines: LogLine[]): void;
  /** `source-lost`, `abandoned`: shown as they happen. */
  onNotice(event: 'source-lost' | 'abandoned', offset: number): void;
  /** The log ended at `offset`; `complete` false when it was abandoned. */
  onEof(offset: number, complete: boolean): void;
  /** A failure the follow cannot get past (401, 403, 404). */
  onFatal(err: ApiError): void;
  /** Connection state, for the status line. */
  onState(state: 'live' | 'reconnecting'): void;
}

/** A line longer than this is passed on in pieces, so a runaway line cannot fill the page. */
const MAX_PENDING_BYTES = 256 * 1024;
const encoder = new TextEncoder();

/**
 * Follows a running attempt's log from `offset` over SSE (`?follow=true`) until its end. A
 * dropped connection is resumed with `Last-Event-ID`: every event's id is the byte offset just
 * past what was sent, so nothing is lost or repeated. Returns a function that stops it.
 */
export function follow(a: AttemptRef, offset: number, on: FollowHandlers): () => void {
  const stop = new AbortController();
  void run(a, offset, on, stop.signal);
  return () => stop.abort();
}

async function run(a: AttemptRef, offset: number, on: FollowHandlers, signal: AbortSignal) {
  let lastId = offset;
  // A line is sent in records of at most 64 KiB: the pieces are joined here up to a limit.
  let pending: { offset: number; text: string; bytes: number; openStart: boolean } | undefined;
  let retryMs = 1000;
  let failures = 0;
  const flushPending = (openEnd: boolean): LogLine | undefined => {
    if (!pending) return undefined;
    const p = pending;
    pending = undefined;
    const line: LogLine = { offset: p.offset, end: p.offset + p.bytes, text: p.text };
    if (p.openStart) line.openStart = true;
    if (openEnd) line.openEnd = true;
    if (line.text.endsWith('\r')) line.text = line.text.slice(0, -1);
    return line;
  };
  while (!signal.aborted) {
    let res: Response;
    try {
      res = await fetch(logPath(a) + mapQuery(a, { follow: true }), {
        signal,
        headers: authHeaders({ Accept: 'text/event-stream', 'Last-Event-ID': String(lastId) }),
        cache: 'no-store',
      });
    } catch {
      if (signal.aborted) return;
      on.onState('reconnecting');
      await sleep(Math.min(retryMs * 2 ** failures++, 10_000), signal);
      continue;
    }
    if (!res.ok) {
      const err = await errorOf(res);
      if ([400, 401, 403, 404, 416].includes(res.status)) {
        on.onFatal(err);
        return;
      }
      on.onState('reconnecting');
      await sleep(Math.min(retryMs * 2 ** failures++, 10_000), signal);
      continue;
    }
    failures = 0;
    on.onState('live');
    // Pieces of a line held from a previous connection resume exactly where the id says.
    if (pending && pending.offset + pending.bytes !== lastId) pending = undefined;
    const parser = new SseParser();
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let ended = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const lines: LogLine[] = [];
        for (const ev of parser.push(value)) {
          if (ev.id !== undefined && /^\d+$/.test(ev.id)) lastId = Number(ev.id);
          const data = JSON.parse(ev.data) as {
            offset: number;
            text?: string;
            bytes?: string;
            eof?: boolean;
            complete?: boolean;
          };
          if (ev.event === 'log') {
            const text = data.text ?? latin(data.bytes ?? '');
            const bytes = data.text !== undefined ? encoder.encode(text).length : rawLength(data);
            if (!pending) pending = { offset: data.offset, text: '', bytes: 0, openStart: false };
            pending.text += text;
            pending.bytes += bytes;
            if (text.endsWith('\n')) {
              pending.text = pending.text.slice(0, -1);
              const line = flushPending(false)!;
              line.end = data.offset + bytes;
              lines.push(line);
            } else if (pending.bytes >= MAX_PENDING_BYTES) {
              const start = pending.offset + pending.bytes;
              lines.push(flushPending(true)!);
              pending = { offset: start, text: '', bytes: 0, openStart: true };
            }
          } else if (ev.event === 'eof') {
            const last = flushPending(false);
            if (last) lines.push(last);
            if (lines.length) on.onLines(lines.splice(0));
            on.onEof(data.offset, data.complete === true);
            ended = true;
            return;
          } else if (ev.event === 'source-lost' || ev.event === 'abandoned') {
            if (lines.length) on.onLines(lines.splice(0));
            on.onNotice(ev.event, data.offset);
          }
          // `lagging`: the server ends the body; the loop reconnects from the last id.
        }
        if (lines.length) on.onLines(lines);
        if (parser.retry !== undefined) retryMs = Math.min(parser.retry, 3000);
      }
    } catch {
      if (signal.aborted) return;
    } finally {
      if (!ended) await reader.cancel().catch(() => undefined);
    }
    if (signal.aborted) return;
    on.onState('reconnecting');
    await sleep(200, signal);
  }
}

/** Bytes that are not valid UTF-8 (base64 in the record), shown with replacement characters. */
function latin(b64: string): string {
  const raw = atob(b64);
  const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

function rawLength(data: { bytes?: string }): number {
  return data.bytes ? atob(data.bytes).length : 0;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}
