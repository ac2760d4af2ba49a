import { once } from 'node:events';
import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { open, stat } from 'node:fs/promises';
import {
  type AgentTokenKeys,
  assertRealPathInside,
  COMPLETION_MARKER_SUFFIX,
  InvalidInputError,
  NotFoundError,
  OffsetOutOfRangeError,
  type PathTemplate,
  resolveInside,
  UnauthorizedError,
  verifyAgentToken,
} from '@tasklog/core';
import type { Request, RequestHandler, Response } from 'express';
import { FileChanges } from './file-changes.js';

export interface AgentLogRouteDeps {
  /** Absolute folder the workers write logs under. */
  baseLogFolder: string;
  pathTemplate: PathTemplate;
  keys: AgentTokenKeys;
  /** Whether the attempt has finished; default: its completion marker (`<file>.done`) exists. */
  isFinished?: (file: string) => Promise<boolean>;
  /** How often a followed file is checked for new bytes; default 100 ms. */
  pollIntervalMs?: number;
}

/** The URL prefix of the route; the rest of the raw path is the attempt's relative log path. */
export const AGENT_LOG_PREFIX = '/log/';

// Bytes read per file read; each piece is handed to the socket before the next is read.
const READ_SIZE = 64 * 1024;

export async function completionMarkerExists(file: string): Promise<boolean> {
  return stat(`${file}${COMPLETION_MARKER_SUFFIX}`).then(
    () => true,
    () => false,
  );
}

/**
 * Turns the raw (still percent-encoded) path after `/log/` into a relative path, decoding each
 * segment exactly once. Rejected with InvalidInputError: empty, `.` or `..` segments (also when
 * encoded), a `/` encoded inside a segment, backslashes, NUL and malformed escapes. Express and
 * fetch() normalise some of these; we read the raw URL so nothing is normalised before the check.
 */
export function decodeRelativePath(raw: string): string {
  const fail = (why: string): never => {
    throw new InvalidInputError(`the log path is not allowed: ${why}`);
  };
  if (raw.length === 0) fail('it is empty');
  const segments = raw.split('/').map((segment) => {
    let decoded = '';
    try {
      decoded = decodeURIComponent(segment);
    } catch (cause) {
      throw new InvalidInputError('the log path holds a malformed %-escape', { cause });
    }
    if (decoded === '' || decoded === '.' || decoded === '..') fail('empty, "." or ".." segment');
    if (decoded.includes('/')) fail('an encoded "/" inside a segment');
    if (decoded.includes('\\')) fail('a backslash');
    if (decoded.includes('\u0000')) fail('a NUL character');
    return decoded;
  });
  return segments.join('/');
}

/**
 * The relative path of a `GET /log/<relative path>` request, decoded from the raw URL (not from
 * express's params, which are decoded already) by decodeRelativePath. NotFoundError when the
 * request is not under `/log/`; InvalidInputError as decodeRelativePath.
 */
export function requestedRelativePath(req: Request): string {
  const rawUrl = req.originalUrl;
  const q = rawUrl.indexOf('?');
  const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q);
  if (!rawPath.startsWith(AGENT_LOG_PREFIX)) throw new NotFoundError('no such route');
  return decodeRelativePath(rawPath.slice(AGENT_LOG_PREFIX.length));
}

// O_NOFOLLOW: a symlink planted as the log itself, also one swapped in after
// assertRealPathInside looked, fails the open (ELOOP) instead of being followed. O_NONBLOCK: a
// FIFO planted as the log must not hang the open; it has no effect on regular files.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/**
 * Opens an attempt log (an absolute path already checked with resolveInside and
 * assertRealPathInside) for reading. Returns undefined when there is no such file or it is not a
 * regular file. InvalidInputError when the log is a symlink; NotFoundError when it cannot be
 * opened for another reason (permissions), as that says nothing more to the client.
 */
export async function openLogFile(file: string): Promise<FileHandle | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, OPEN_FLAGS);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    if (code === 'ELOOP') throw new InvalidInputError('the log is a symlink', { cause });
    throw new NotFoundError('this agent cannot open that attempt log', { cause });
  }
  try {
    if ((await fh.stat()).isFile()) return fh;
  } catch (cause) {
    await fh.close();
    throw new NotFoundError('this agent cannot read that attempt log', { cause });
  }
  await fh.close();
  return undefined;
}

function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header ?? '');
  return m?.[1];
}

function parseOffset(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) {
    throw new InvalidInputError('offset must be a non-negative integer');
  }
  return Number(value);
}

/**
 * `GET /log/<relative path>?offset=N&follow=1`: the live bytes of one attempt's local log.
 * Order matters: the path is checked without touching the disk, then the token, and only then
 * is the file system consulted, so a caller without the right token learns nothing about files.
 */
export function agentLogRoute(deps: AgentLogRouteDeps): RequestHandler {
  const isFinished = deps.isFinished ?? completionMarkerExists;
  const pollIntervalMs = deps.pollIntervalMs ?? 100;
  return async (req, res, next) => {
    try {
      const relativePath = requestedRelativePath(req);
      if (!deps.pathTemplate.tryParse(relativePath)) {
        throw new NotFoundError('the path is not an attempt log of this agent');
      }
      const offset = parseOffset(req.query.offset);
      const follow = req.query.follow === '1' || req.query.follow === 'true';

      try {
        await verifyAgentToken(deps.keys, bearerToken(req.get('authorization')), {
          relativePath,
        });
      } catch (err) {
        if (err instanceof UnauthorizedError) res.set('WWW-Authenticate', 'Bearer');
        throw err;
      }

      const file = resolveInside(deps.baseLogFolder, relativePath);
      await assertRealPathInside(deps.baseLogFolder, file);
      const complete = await isFinished(file);
      const fh = await openLogFile(file);
      if (!fh) throw new NotFoundError('this agent has no such attempt log');
      try {
        const { size } = await fh.stat();
        if (offset > size) throw new OffsetOutOfRangeError(offset, size);
        res.status(200).set({
          'Content-Type': 'text/plain; charset=utf-8',
          'X-Content-Type-Options': 'nosniff',
          'Cache-Control': 'no-store',
          'X-Tasklog-Offset': String(offset),
          'X-Tasklog-Complete': String(complete),
        });
        res.flushHeaders();
        await streamFrom(fh, offset, res, {
          file,
          follow: follow && !complete ? () => isFinished(file) : undefined,
          pollIntervalMs,
        });
      } finally {
        await fh.close();
      }
    } catch (err) {
      next(err);
    }
  };
}

/**
 * Writes the file from `offset` to `res`. With `follow`, waits at EOF for more bytes until
 * `follow()` says the attempt finished, then sends what is left up to the final size and ends.
 * At EOF it waits for the file's folder to report a change (FileChanges), so a new line goes out
 * as soon as it is written; `pollIntervalMs` is only the fallback where no events come. A client
 * disconnect ends the loop at the next await; no timer or watch outlives the response.
 */
async function streamFrom(
  fh: FileHandle,
  offset: number,
  res: Response,
  opts: { file: string; follow?: () => Promise<boolean>; pollIntervalMs: number },
): Promise<void> {
  const gone = new AbortController();
  const onClose = () => gone.abort();
  res.once('close', onClose);
  const { signal } = gone;
  // Watched from the first wait at the end of the file on: a finished log is never watched.
  let changes: FileChanges | undefined;
  try {
    let pos = offset;
    // Seen before a read that then hit EOF: every byte up to the final size has been sent.
    let finished = !opts.follow;
    while (!signal.aborted) {
      // A fresh buffer per read: res.write() may hold on to it until the socket takes it.
      const buf = Buffer.allocUnsafe(READ_SIZE);
      const { bytesRead } = await fh.read(buf, 0, READ_SIZE, pos);
      if (bytesRead > 0) {
        pos += bytesRead;
        if (!res.write(buf.subarray(0, bytesRead))) {
          try {
            await once(res, 'drain', { signal });
          } catch {
            return; // the client went away
          }
        }
        continue;
      }
      if (finished) break;
      finished = await opts.follow!();
      if (!finished) {
        changes ??= new FileChanges(opts.file, [COMPLETION_MARKER_SUFFIX]);
        try {
          await changes.next(opts.pollIntervalMs, signal);
        } catch {
          return;
        }
      }
    }
    if (!signal.aborted) res.end();
  } finally {
    changes?.close();
    res.off('close', onClose);
  }
}
