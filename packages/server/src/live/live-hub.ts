import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import {
  type AgentTokenKeys,
  BackendUnavailableError,
  ForbiddenError,
  signAgentToken,
} from '@tasklog/core';
import { AgentUrlPolicy } from './agent-url-policy.js';

/** A follower asked for bytes older than the hub's window; it reads the archive first. */
export class BehindWindowError extends Error {
  constructor(
    readonly offset: number,
    readonly windowStart: number,
  ) {
    super(`offset ${offset} is before the live window, which starts at ${windowStart}`);
  }
}

/** A follower fell so far behind that the bytes it needs left the ring buffer; it must reconnect. */
export class LaggingError extends Error {
  constructor(readonly offset: number) {
    super(`follower at offset ${offset} fell behind the live window`);
  }
}

export interface LiveHubOptions {
  /** Signs the token each upstream request carries. Must hold a signing key. */
  keys: AgentTokenKeys;
  /**
   * Most recent bytes kept per attempt for followers that join late or read slowly; default
   * 8 MiB. It is also the lag bound: a follower whose next byte left the ring is cut off.
   */
  ringBytes?: number;
  /** Which agent URLs may be reached; default: any http(s) URL but link-local and metadata ones. */
  policy?: AgentUrlPolicy;
}

export interface LiveSubscription {
  /** The attempt's log path relative to the store root, as the agent serves it. */
  relativePath: string;
  /** Base URL of the agent, from the catalog. */
  agentUrl: string;
  /** First byte wanted. */
  offset: number;
  signal: AbortSignal;
}

interface Piece {
  offset: number;
  bytes: Buffer;
}

/** One upstream connection to an agent and the ring of the bytes it delivered last. */
class LiveChannel {
  readonly controller = new AbortController();
  private readonly pieces: Piece[] = [];
  private held = 0;
  start: number;
  end: number;
  state: 'open' | 'ended' | 'failed' = 'open';
  error: unknown;
  subscribers = 0;
  private waiters: (() => void)[] = [];

  constructor(
    offset: number,
    private readonly ringBytes: number,
  ) {
    this.start = offset;
    this.end = offset;
  }

  append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.pieces.push({ offset: this.end, bytes });
    this.end += bytes.length;
    this.held += bytes.length;
    while (this.held > this.ringBytes && this.pieces.length > 1) {
      const dropped = this.pieces.shift()!;
      this.held -= dropped.bytes.length;
      this.start = this.pieces[0]!.offset;
    }
    this.notify();
  }

  notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The buffered bytes starting at `offset`, up to the end of the piece holding it. */
  bytesFrom(offset: number): Buffer | undefined {
    if (offset < this.start || offset >= this.end) return undefined;
    // Pieces are few (ring / piece size) and followers are mostly near the end: scan backwards.
    for (let i = this.pieces.length - 1; i >= 0; i--) {
      const p = this.pieces[i]!;
      // The piece itself when the follower is at its start: followers in step then share one
      // Buffer, and what is derived from it (their NDJSON) is computed once.
      if (p.offset === offset) return p.bytes;
      if (p.offset < offset) return p.bytes.subarray(offset - p.offset);
    }
    return undefined;
  }

  /** Calls `wake` once, at the next change (bytes appended, the stream ended or failed). */
  onChange(wake: () => void): void {
    this.waiters.push(wake);
  }
}

/** The agent URL of one attempt's live log, each path segment percent-encoded once. */
export function agentLogUrl(agentUrl: string, relativePath: string, offset: number): string {
  const encoded = relativePath.split('/').map(encodeURIComponent).join('/');
  return `${agentUrl.replace(/\/+$/, '')}/log/${encoded}?offset=${offset}&follow=1`;
}

/**
 * Shares one upstream connection per running attempt among all its followers. The upstream is
 * read as fast as the agent sends, into a bounded ring; each follower pulls from the ring at
 * its own pace, so a slow follower neither slows the others nor grows memory: once the bytes it
 * needs have left the ring it gets LaggingError and must reconnect at its offset.
 *
 * The upstream starts at the offset of the follower that opened it; a later follower whose
 * offset is before the ring gets BehindWindowError and is expected to read the archive until it
 * reaches the window. The upstream is closed when its last follower leaves.
 */
export class LiveHub {
  private readonly channels = new Map<string, LiveChannel>();
  private readonly ringBytes: number;
  private opened = 0;

  constructor(private readonly options: LiveHubOptions) {
    this.ringBytes = options.ringBytes ?? 8 * 1024 * 1024;
  }

  /** Upstream connections opened so far (for metrics and tests). */
  get upstreamsOpened(): number {
    return this.opened;
  }

  /** Upstream connections open now, one per attempt followed live. */
  get upstreams(): number {
    return this.channels.size;
  }

  /**
   * Live bytes from `offset`. Ends normally when the agent ends its stream (the attempt
   * finished); throws BehindWindowError (at once), LaggingError, or BackendUnavailableError
   * when the agent cannot be reached or the connection breaks.
   */
  async *subscribe(sub: LiveSubscription): AsyncGenerator<Buffer> {
    const id = `${sub.agentUrl}\n${sub.relativePath}`;
    let channel = this.channels.get(id);
    if (channel && sub.offset < channel.start) {
      throw new BehindWindowError(sub.offset, channel.start);
    }
    if (!channel) {
      channel = new LiveChannel(sub.offset, this.ringBytes);
      this.channels.set(id, channel);
      this.opened++;
      void this.pump(id, channel, sub);
    }
    channel.subscribers++;
    let offset = sub.offset;
    // One abort listener for the whole subscription (not one per wait): it ends the current wait.
    let wake: (() => void) | undefined;
    const onAbort = () => wake?.();
    sub.signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!sub.signal.aborted) {
        if (offset < channel.start) throw new LaggingError(offset);
        const bytes = channel.bytesFrom(offset);
        if (bytes) {
          offset += bytes.length;
          yield bytes;
          continue;
        }
        if (channel.state === 'ended') return;
        if (channel.state === 'failed') throw channel.error;
        await new Promise<void>((resolve) => {
          if (sub.signal.aborted) return resolve();
          wake = resolve;
          channel.onChange(resolve);
        });
        wake = undefined;
      }
    } finally {
      sub.signal.removeEventListener('abort', onAbort);
      channel.subscribers--;
      if (channel.subscribers === 0 && channel.state === 'open') {
        channel.controller.abort();
        if (this.channels.get(id) === channel) this.channels.delete(id);
      }
    }
  }

  /** Closes every upstream; their followers see BackendUnavailableError. */
  close(): void {
    for (const channel of this.channels.values()) channel.controller.abort();
    this.channels.clear();
  }

  get #policy(): AgentUrlPolicy {
    this.#defaultPolicy ??= this.options.policy ?? new AgentUrlPolicy();
    return this.#defaultPolicy;
  }
  #defaultPolicy?: AgentUrlPolicy;

  /** GET `url` with the token; the address is checked again when the connection is made. */
  #get(url: URL, token: string, signal: AbortSignal): Promise<IncomingMessage> {
    const client = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = client.request(url, {
        headers: { authorization: `Bearer ${token}` },
        lookup: this.#policy.lookup(url),
        signal,
      });
      req.once('response', resolve);
      req.once('error', reject);
      req.end();
    });
  }

  private async pump(id: string, channel: LiveChannel, sub: LiveSubscription): Promise<void> {
    const { signal } = channel.controller;
    try {
      // Checked before a token is signed: a forged catalog row gets neither a token nor a request.
      const url = new URL(agentLogUrl(sub.agentUrl, sub.relativePath, channel.start));
      this.#policy.check(url.href);
      const token = await signAgentToken(this.options.keys, { relativePath: sub.relativePath });
      let res: IncomingMessage;
      try {
        res = await this.#get(url, token, signal);
      } catch (cause) {
        if (cause instanceof ForbiddenError) throw cause;
        throw new BackendUnavailableError(`cannot reach the agent at ${sub.agentUrl}`, { cause });
      }
      if (res.statusCode !== 200) {
        res.destroy();
        throw new BackendUnavailableError(
          `the agent at ${sub.agentUrl} answered ${res.statusCode}`,
        );
      }
      try {
        for await (const piece of res) channel.append(piece as Buffer);
      } catch (cause) {
        throw new BackendUnavailableError(`the connection to the agent at ${sub.agentUrl} broke`, {
          cause,
        });
      }
      channel.state = 'ended';
    } catch (err) {
      channel.state = 'failed';
      channel.error =
        err instanceof BackendUnavailableError
          ? err
          : new BackendUnavailableError(
              err instanceof ForbiddenError
                ? `refused to reach the agent: ${err.message}`
                : 'the live source failed',
              { cause: err },
            );
    } finally {
      if (this.channels.get(id) === channel) this.channels.delete(id);
      channel.notify();
    }
  }
}
