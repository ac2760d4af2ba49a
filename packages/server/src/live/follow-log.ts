import { setTimeout as sleep } from 'node:timers/promises';
import type { AttemptKey, Catalog, LogStore } from '@tasklog/core';
import { IntegrityError } from '@tasklog/core';
import { BehindWindowError, LaggingError, type LiveHub } from './live-hub.js';

/** What a follower is told, in order; every `bytes` event starts where the previous ended. */
export type FollowEvent =
  | { type: 'bytes'; offset: number; bytes: Uint8Array }
  /** The agent could not be reached or the connection broke; the archive is read meanwhile. */
  | { type: 'source-lost'; offset: number }
  /** The attempt's writer stopped sending heartbeats: it is recorded `abandoned`; `eof` follows. */
  | { type: 'abandoned'; offset: number }
  /** The follower fell behind the live window; it should reconnect at `offset`. Last event. */
  | { type: 'lagging'; offset: number }
  /** Last event: `complete` is false when the log ended without the archive confirming it. */
  | { type: 'eof'; offset: number; complete: boolean };

export interface FollowTimings {
  /** How often the archive and catalog are polled while waiting; default 250 ms. */
  pollIntervalMs?: number;
  /** After a lost agent, how long before it is asked again; default 3000 ms. */
  agentRetryMs?: number;
  /**
   * After the agent ended its stream (the attempt finished), how long to wait for the archive
   * to confirm the log is complete; default 60000 ms. Past it the log ends with `complete: false`.
   */
  handoverTimeoutMs?: number;
  /**
   * A `running` attempt whose heartbeat is older than this (ms) has lost its writer (`tasklog
   * run`, `ship --follow` or the agent died with the worker): it is recorded `abandoned` and its
   * followers get what the archive holds, then `eof`. Default 90,000 (three heartbeats).
   */
  staleAfterMs?: number;
}

export interface FollowLogOptions extends FollowTimings {
  key: AttemptKey;
  catalog: Catalog;
  store: LogStore;
  /** Without a hub (no signing keys) the archive alone is followed. */
  hub?: LiveHub;
  /** The attempt's path as its agent serves it: rendered from the key, not read from the catalog. */
  relativePath: string;
  offset: number;
  signal: AbortSignal;
}

/**
 * Follows one attempt's log from `offset` until it is complete, switching between the live
 * agent stream and the archive. One cursor drives everything: each source is only ever asked
 * for bytes from the cursor on, so no byte is sent twice or skipped across hand-overs.
 *
 * - Live (record `running` with an `agentUrl`, and a hub): bytes come from the hub. When the
 *   agent ends its stream the attempt is finished; the archive is then polled (bounded by
 *   `handoverTimeoutMs`) until it says complete, and any bytes it holds past the cursor follow.
 * - Agent lost: `source-lost` once, then the archive is read from the cursor and polled; the
 *   agent is tried again every `agentRetryMs` while the record is still running.
 * - Otherwise the archive is polled until complete, or until the record says the attempt ended
 *   without completing (`failed`, `abandoned`, or no record): then `eof` with `complete: false`.
 *   A `running` attempt whose heartbeat is older than `staleAfterMs` is marked `abandoned` here
 *   (`abandoned` event, then `eof`), so no follower waits for a writer that is gone.
 */
export async function* followLog(o: FollowLogOptions): AsyncGenerator<FollowEvent> {
  const pollIntervalMs = o.pollIntervalMs ?? 250;
  const agentRetryMs = o.agentRetryMs ?? 3000;
  const handoverTimeoutMs = o.handoverTimeoutMs ?? 60_000;
  const staleAfterMs = o.staleAfterMs ?? 90_000;
  const { key, catalog, store, hub, signal } = o;
  let offset = o.offset;
  let agentRetryAt = 0;
  let lostReported = false;
  let handoverDeadline: number | undefined;

  while (!signal.aborted) {
    let record = await catalog.get(key);
    if (
      hub &&
      handoverDeadline === undefined &&
      record?.state === 'running' &&
      record.agentUrl &&
      // A silent agent (no heartbeat for staleAfterMs) counts as lost: the archive is read.
      Date.now() - (record.heartbeatAt?.getTime() ?? 0) < staleAfterMs &&
      Date.now() >= agentRetryAt
    ) {
      try {
        const live = hub.subscribe({
          relativePath: o.relativePath,
          agentUrl: record.agentUrl,
          offset,
          signal,
        });
        for await (const bytes of live) {
          lostReported = false;
          yield { type: 'bytes', offset, bytes };
          offset += bytes.length;
        }
        if (signal.aborted) return;
        handoverDeadline = Date.now() + handoverTimeoutMs;
        continue;
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof LaggingError) {
          yield { type: 'lagging', offset };
          return;
        }
        if (!(err instanceof BehindWindowError)) {
          if (!lostReported) yield { type: 'source-lost', offset };
          lostReported = true;
          agentRetryAt = Date.now() + agentRetryMs;
        }
      }
    }

    const stat = await store.stat(key, { signal });
    if (stat && stat.size > offset) {
      for await (const chunk of store.read(key, { offset, end: stat.size, signal })) {
        if (chunk.offset !== offset) {
          throw new IntegrityError(`store returned a chunk at ${chunk.offset}, expected ${offset}`);
        }
        if (chunk.bytes.length === 0) continue;
        yield { type: 'bytes', offset, bytes: chunk.bytes };
        offset += chunk.bytes.length;
      }
      // Go back to the live source at once: a follower behind the window may now be inside it.
      continue;
    }
    if (stat?.complete) {
      yield { type: 'eof', offset, complete: true };
      return;
    }
    if (record?.state === 'running' && handoverDeadline === undefined) {
      const cutoff = Date.now() - staleAfterMs;
      if ((record.heartbeatAt?.getTime() ?? 0) < cutoff) {
        // Conditional: a heartbeat that arrives meanwhile wins, and the attempt stays running.
        record = (await catalog.abandonIfStale(key, new Date(cutoff))) ?? record;
      }
    }
    // `shipped` with an incomplete archive means the record names another store; nothing to wait for.
    const endedIncomplete =
      !record ||
      record.state === 'failed' ||
      record.state === 'abandoned' ||
      record.state === 'shipped';
    const handoverExpired = handoverDeadline !== undefined && Date.now() >= handoverDeadline;
    if (endedIncomplete || handoverExpired) {
      if (record?.state === 'abandoned') yield { type: 'abandoned', offset };
      yield { type: 'eof', offset, complete: false };
      return;
    }
    await sleep(pollIntervalMs, undefined, { signal }).catch(() => undefined);
  }
}
