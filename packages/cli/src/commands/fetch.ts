import { exec } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { Readable, type Writable } from 'node:stream';
import { promisify } from 'node:util';
import {
  type AttemptKey,
  attemptKey,
  BackendUnavailableError,
  errorFromCode,
  formatAttempt,
  InvalidInputError,
  type LogStore,
  NotFoundError,
} from '@tasklog/core';
import type { CommandContext } from '../context.js';
import { progressBar } from '../progress.js';

export interface FetchOptions {
  /** Keep streaming a running attempt until it ends, reconnecting after a dropped connection. */
  follow?: boolean;
  try?: number;
  mapIndex: number;
  offset: number;
  output?: string;
  server?: string;
  /** A shell command printing the bearer token for `--server` (else `TASKLOG_TOKEN`). */
  tokenCmd?: string;
}

/** Where the bytes come from: a tasklog server over HTTP, or a store read directly. */
interface Source {
  latestTry(task: Omit<AttemptKey, 'tryNumber'>): Promise<number | undefined>;
  /** Total size if known, and the bytes from `offset` (with `follow`, until the attempt ends). */
  open(
    key: AttemptKey,
    offset: number,
    signal: AbortSignal,
    follow: boolean,
  ): Promise<{ size?: number; body: AsyncIterable<Uint8Array> }>;
}

const STORE_POLL_MS = 1000;
/** Consecutive failed reconnects after which `--follow` gives up. */
const FOLLOW_RECONNECTS = 10;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((done) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      done();
    });
  });
}

export async function fetchCommand(
  ctx: CommandContext,
  ids: { dagId: string; runId: string; taskId: string },
  options: FetchOptions,
): Promise<void> {
  const task = { ...ids, mapIndex: options.mapIndex };
  const source = options.server
    ? serverSource(options.server, await serverToken(options.tokenCmd))
    : await storeSource(ctx);
  const tryNumber = options.try ?? (await source.latestTry(task));
  if (tryNumber === undefined) {
    throw new NotFoundError(
      `no attempt of ${ids.dagId}/${ids.runId}/${ids.taskId}${options.mapIndex >= 0 ? `[${options.mapIndex}]` : ''} is known; check the ids or pass --try`,
    );
  }
  const key = attemptKey({ ...task, tryNumber });
  const abort = new AbortController();
  const { size, body } = await source.open(key, options.offset, abort.signal, !!options.follow);

  if (!options.output) {
    await copyTo(body, process.stdout, () => {});
    return;
  }
  // Write beside the target and rename at the end, so FILE is never a partial log.
  const tmp = `${options.output}.tasklog-${process.pid}.part`;
  const out = createWriteStream(tmp);
  const bar = progressBar(`fetch ${formatAttempt(key)}`);
  let done = options.offset;
  try {
    await copyTo(body, out, (n) => {
      done += n;
      bar.update(done, Math.max(size ?? done, done));
    });
    out.end();
    await once(out, 'finish');
    await rename(tmp, options.output);
  } catch (err) {
    abort.abort();
    out.destroy();
    await unlink(tmp).catch(() => {});
    throw err;
  } finally {
    bar.stop();
  }
}

/** Copies with backpressure: waits for 'drain' whenever the destination's buffer is full. */
async function copyTo(
  body: AsyncIterable<Uint8Array>,
  out: Writable,
  onBytes: (n: number) => void,
) {
  for await (const bytes of body) {
    onBytes(bytes.length);
    if (!out.write(bytes)) await once(out, 'drain');
  }
}

async function storeSource(ctx: CommandContext): Promise<Source> {
  const store: LogStore = await ctx.openStore();
  return {
    async latestTry(task) {
      let latest: number | undefined;
      for await (const k of store.list(task)) {
        if (k.mapIndex === task.mapIndex) latest = Math.max(latest ?? 0, k.tryNumber);
      }
      if (latest !== undefined) return latest;
      // The catalog may know an attempt the store has not got (yet): asked only when the store
      // has none, so a fetch does not open the catalog it does not need.
      return ctx
        .openCatalog()
        .then((c) => c.latestTry(task))
        .catch(() => undefined);
    },
    async open(key, offset, signal, follow) {
      const stat = await store.stat(key, { signal });
      if (!stat) throw new NotFoundError(`${formatAttempt(key)} is not in ${store.url}`);
      const body = (async function* () {
        let at = offset;
        for (;;) {
          for await (const chunk of store.read(key, { offset: at, signal })) {
            at = chunk.offset + chunk.bytes.length;
            yield chunk.bytes;
          }
          // Following straight from a store: poll until a writer marks the log complete.
          if (!follow || (await store.stat(key, { signal }))?.complete) return;
          await sleep(STORE_POLL_MS, signal);
        }
      })();
      return { size: stat.size, body };
    },
  };
}

/** The bearer token for `--server`: `--token-cmd`'s output, else `TASKLOG_TOKEN`, else none. */
async function serverToken(tokenCmd: string | undefined): Promise<string | undefined> {
  if (tokenCmd === undefined) return process.env.TASKLOG_TOKEN || undefined;
  try {
    const { stdout } = await promisify(exec)(tokenCmd, { timeout: 30_000 });
    const token = stdout.trim();
    if (token) return token;
  } catch (cause) {
    throw new InvalidInputError(`--token-cmd failed: ${(cause as Error).message.split('\n')[0]}`, {
      cause,
    });
  }
  throw new InvalidInputError('--token-cmd printed no token');
}

function serverSource(server: string, token: string | undefined): Source {
  const base = server.replace(/\/+$/, '');
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const get = async (path: string, signal?: AbortSignal) => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { signal, headers });
    } catch (cause) {
      throw new BackendUnavailableError(
        `cannot reach the tasklog server at ${base}: is \`tasklog serve\` running there?`,
        { cause },
      );
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let parsed: { error?: { code?: string; message?: string } } | undefined;
      try {
        parsed = JSON.parse(text);
      } catch {}
      let message = parsed?.error?.message ?? `HTTP ${res.status} ${res.statusText}`;
      if (res.status === 401) {
        message += token
          ? ' (the token was refused: expired, or not issued for this server)'
          : ' (set TASKLOG_TOKEN, or pass --token-cmd, to send a bearer token)';
      }
      throw errorFromCode(
        parsed?.error?.code ?? (res.status === 404 ? 'NOT_FOUND' : ''),
        `${base}: ${message}`,
      );
    }
    return res;
  };
  return {
    async latestTry(task) {
      const q = new URLSearchParams({
        dagId: task.dagId,
        runId: task.runId,
        taskId: task.taskId,
        mapIndex: String(task.mapIndex),
      });
      const res = await get(`/api/v1/attempts?${q}`);
      const { attempts } = (await res.json()) as { attempts: Array<{ tryNumber: number }> };
      return attempts.length ? Math.max(...attempts.map((a) => a.tryNumber)) : undefined;
    },
    async open(key, offset, signal, follow) {
      const e = encodeURIComponent;
      const request = (from: number) => {
        const q = new URLSearchParams({ mapIndex: String(key.mapIndex), offset: String(from) });
        if (follow) q.set('follow', 'true');
        return get(
          `/api/v1/dags/${e(key.dagId)}/runs/${e(key.runId)}/tasks/${e(key.taskId)}/attempts/${key.tryNumber}/log?${q}`,
          signal,
        );
      };
      const bodyOf = (res: Response) => {
        if (!res.body) throw new BackendUnavailableError(`${base} sent no body`);
        return Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
      };
      const first = await request(offset);
      const size = Number(first.headers.get('x-tasklog-size') ?? Number.NaN);
      const body = (async function* () {
        let at = offset;
        let res = first;
        let failures = 0;
        for (;;) {
          try {
            for await (const bytes of bodyOf(res)) {
              at += (bytes as Uint8Array).length;
              failures = 0;
              yield bytes as Uint8Array;
            }
            return; // a clean end is the end of the log
          } catch (err) {
            // A dropped connection while following: reconnect and resume at the byte reached.
            if (!follow || signal.aborted || ++failures > FOLLOW_RECONNECTS) throw err;
            await sleep(Math.min(500 * 2 ** failures, 10_000), signal);
            res = await request(at);
          }
        }
      })();
      return { size: Number.isFinite(size) ? size : undefined, body };
    },
  };
}
