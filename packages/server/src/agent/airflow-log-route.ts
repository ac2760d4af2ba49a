import type { FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import {
  type AttemptKey,
  assertRealPathInside,
  BackendUnavailableError,
  ForbiddenError,
  InvalidInputError,
  type LogStore,
  NotFoundError,
  type PathTemplate,
  resolveInside,
} from '@tasklog/core';
import type { Request, RequestHandler, Response } from 'express';
import { decodeJwt, type JWTPayload, jwtVerify } from 'jose';
import { clientGoneSignal } from '../client-gone.js';
import { sendUnsatisfiableRange } from '../http-errors.js';
import { type ByteRange, parseByteRange } from '../http-range.js';
import { openLogFile, requestedRelativePath } from './agent-log-route.js';

/**
 * Airflow's worker log server protocol (`airflow serve-logs`, port 8793), so the agent can stand
 * in for it and Airflow's UI keeps showing the live log of a running attempt.
 *
 * Airflow's reader (`_fetch_logs_from_service` in airflow/utils/log/file_task_handler.py, 2.x;
 * airflow-core/src/airflow/utils/log/file_task_handler.py, 3.x) sends
 * `GET /log/<relative path>` with `Authorization: <jwt>` (no `Bearer`): HS512 over the secret
 * key, audience `task-instance-logs`, claims iat = nbf = now, exp = now + log_request_clock_grace
 * and `filename` = the relative path; 3.x adds `jti`. It turns a 403 into a hint to check
 * secret_key and clocks, any other error status into "Could not read served logs", and reads the
 * body as UTF-8 whatever the Content-Type. 3.x shows nothing unless `Content-Length` is > 0 and
 * reads `response.raw`, so the body is sent with a length and never compressed.
 */

/** The `aud` of Airflow's log-server tokens. */
export const AIRFLOW_LOG_AUDIENCE = 'task-instance-logs';

// airflow/utils/jwt_signer.py: JWTSigner's `leeway_in_seconds` defaults to 5 and
// airflow/utils/serve_logs.py never passes it; 2.x spends log_request_clock_grace on the expiry.
const AIRFLOW2_LEEWAY_SECONDS = 5;
// Airflow's tokens are ~300 characters; anything far bigger is not worth parsing.
const MAX_TOKEN_LENGTH = 8192;
const READ_SIZE = 64 * 1024;

export interface AirflowLogRouteDeps {
  /** Absolute folder the workers write logs under (Airflow's `[logging] base_log_folder`). */
  baseLogFolder: string;
  pathTemplate: PathTemplate;
  /** Airflow's `[api] secret_key` (3.x) / `[webserver] secret_key` (2.x). */
  secretKey: string;
  /** `[webserver] log_request_clock_grace`: Airflow 3's leeway on every time claim. */
  clockGraceSeconds: number;
  /** Where a finished attempt's log is read when its local file is gone. */
  archive?: LogStore;
}

/**
 * Whether the request carries a token meant for Airflow's log server. Decodes without verifying,
 * for routing only: the verifier it picks checks everything again with its own key.
 */
export function isAirflowLogRequest(authorization: string | undefined): boolean {
  const token = authorization?.replace(/^Bearer[ ]+/i, '').trim();
  if (!token || token.length > MAX_TOKEN_LENGTH) return false;
  try {
    const { aud } = decodeJwt(token);
    return Array.isArray(aud) ? aud.includes(AIRFLOW_LOG_AUDIENCE) : aud === AIRFLOW_LOG_AUDIENCE;
  } catch {
    return false;
  }
}

/** Which Airflow made the token: 3.x's JWTGenerator always sets `jti`, 2.x's JWTSigner never. */
type AirflowGeneration = 2 | 3;

/**
 * Checks `header` as Airflow's log server does and returns the generation that made it.
 * ForbiddenError for everything Airflow refuses with 403: no header, a `Bearer` prefix (Airflow
 * hands the whole header to jwt.decode), another algorithm (incl. `none`), a bad signature, another
 * audience, a missing exp/iat/nbf, expired or not yet valid beyond the leeway, and a `filename`
 * that is not byte for byte the requested path.
 */
export async function verifyAirflowLogToken(
  key: Uint8Array,
  header: string | undefined,
  options: { relativePath: string; clockGraceSeconds: number },
): Promise<AirflowGeneration> {
  if (header === undefined) throw new ForbiddenError('an Airflow log token is required');
  if (header.length > MAX_TOKEN_LENGTH) {
    throw new ForbiddenError('the Airflow log token is not valid');
  }
  const loosest = Math.max(options.clockGraceSeconds, AIRFLOW2_LEEWAY_SECONDS);
  let payload: JWTPayload;
  try {
    // jwt.decode(..., algorithms=["HS512"], audience="task-instance-logs",
    // options={"require": ["exp", "iat", "nbf"]}) in both jwt_signer.py and tokens.py.
    ({ payload } = await jwtVerify(header, key, {
      algorithms: ['HS512'],
      audience: AIRFLOW_LOG_AUDIENCE,
      requiredClaims: ['exp', 'iat', 'nbf'],
      clockTolerance: loosest,
    }));
  } catch (cause) {
    throw new ForbiddenError('the Airflow log token is not valid', { cause });
  }
  const generation: AirflowGeneration = payload.jti === undefined ? 2 : 3;
  // PyJWT's time rules with the leeway of the Airflow that made the token: 2.x verifies with
  // JWTSigner's fixed 5 s, 3.x's JWTValidator with log_request_clock_grace
  // (airflow-core/src/airflow/utils/serve_logs/log_server.py). PyJWT also refuses an iat in the
  // future, which jose checks only together with a maximum age.
  const leeway = generation === 3 ? options.clockGraceSeconds : AIRFLOW2_LEEWAY_SECONDS;
  const now = Math.floor(Date.now() / 1000);
  const { exp, nbf, iat } = payload as Required<Pick<JWTPayload, 'exp' | 'nbf' | 'iat'>>;
  if (exp <= now - leeway || nbf > now + leeway || iat > now + leeway) {
    throw new ForbiddenError('the Airflow log token is expired or not yet valid');
  }
  // Compared with the whole decoded path, never a stripped or normalised one: Airflow 3.0-3.2.1
  // compared `request.url.path.lstrip("/log/")` (CVE-2026-45426), which strips any of the
  // characters `/`, `l`, `o`, `g`, so a token for `x.log` also opened `log/x.log` or `gol/x.log`.
  if (payload.filename !== options.relativePath) {
    throw new ForbiddenError('the Airflow log token was issued for another file');
  }
  return generation;
}

/**
 * `GET /log/<relative path>` as `airflow serve-logs` answers it: 200 with exactly the file's bytes
 * (as many as it held when opened, with that Content-Length), 206 for a single byte range, 403 for
 * a token Airflow would refuse, 404 when there is no such log. Tasklog is stricter than
 * serve-logs in two ways: only attempt logs of the path template are served, and no symlink.
 */
export function airflowLogRoute(deps: AirflowLogRouteDeps): RequestHandler {
  if (typeof deps.secretKey !== 'string' || deps.secretKey.length === 0) {
    throw new InvalidInputError("agent.airflow_secret_key must be Airflow's non-empty secret key");
  }
  if (!Number.isFinite(deps.clockGraceSeconds) || deps.clockGraceSeconds < 0) {
    throw new InvalidInputError('agent.airflow_clock_grace must be a number of seconds >= 0');
  }
  // PyJWT signs with the key's UTF-8 bytes (HMACAlgorithm.prepare_key).
  const key = new TextEncoder().encode(deps.secretKey);
  return async (req, res, next) => {
    try {
      const relativePath = requestedRelativePath(req);
      const generation = await verifyAirflowLogToken(key, req.get('authorization'), {
        relativePath,
        clockGraceSeconds: deps.clockGraceSeconds,
      });
      const attempt = deps.pathTemplate.tryParse(relativePath);
      if (!attempt) throw new NotFoundError('the path is not an attempt log of this agent');
      const file = resolveInside(deps.baseLogFolder, relativePath);
      await assertRealPathInside(deps.baseLogFolder, file);
      const fh = await openLogFile(file);
      if (fh) {
        try {
          const { size } = await fh.stat();
          await send(req, res, generation, size, (from, to) => fileBytes(fh, from, to));
        } finally {
          await fh.close();
        }
        return;
      }
      await sendFromArchive(req, res, generation, attempt, deps.archive);
    } catch (err) {
      next(err);
    }
  };
}

/** The attempt's local file is gone (shipped and deleted): the same bytes from the archive. */
async function sendFromArchive(
  req: Request,
  res: Response,
  generation: AirflowGeneration,
  attempt: AttemptKey,
  archive: LogStore | undefined,
): Promise<void> {
  if (!archive) throw new NotFoundError('this agent has no such attempt log');
  const signal = clientGoneSignal(res);
  const stat = await archive.stat(attempt, { signal });
  if (!stat) throw new NotFoundError('neither this agent nor the archive has this attempt log');
  await send(req, res, generation, stat.size, (from, to) =>
    storeBytes(archive.read(attempt, { offset: from, end: to, signal }), from, to),
  );
}

type BodySource = (from: number, to: number) => AsyncIterable<Uint8Array>;

async function send(
  req: Request,
  res: Response,
  generation: AirflowGeneration,
  size: number,
  body: BodySource,
): Promise<void> {
  let range: ByteRange = { start: 0, end: size - 1 };
  let status = 200;
  const headers: Record<string, string> = {
    // 2.x: airflow/utils/serve_logs.py calls send_from_directory(..., mimetype="application/json").
    // 3.x: Starlette's StaticFiles guesses from the name; `.log` is unregistered, so text/plain,
    // and Starlette adds the charset to text/*. Neither reader looks at it (both force UTF-8).
    'Content-Type': generation === 2 ? 'application/json' : 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
    // Both Werkzeug's send_file and Starlette's FileResponse answer a single byte range.
    'Accept-Ranges': 'bytes',
    // serve-logs also sends ETag / Last-Modified and may answer 304. A running log grows within
    // Last-Modified's one-second resolution and Airflow never sends a conditional request, so
    // nothing here may be cached.
    'Cache-Control': 'no-store',
  };
  const rangeHeader = req.get('range');
  if (rangeHeader !== undefined) {
    const asked = parseByteRange(rangeHeader, size);
    if (asked === 'unsatisfiable') {
      sendUnsatisfiableRange(res, rangeHeader, size);
      return;
    }
    if (asked) {
      range = asked;
      status = 206;
      headers['Content-Range'] = `bytes ${asked.start}-${asked.end}/${size}`;
    }
  }
  const length = range.end + 1 - range.start;
  // Airflow 3's reader shows a served log only when Content-Length is > 0.
  headers['Content-Length'] = String(length);
  res.status(status);
  // setHeader, not express's set(), which would append a charset to application/json.
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  const signal = clientGoneSignal(res);
  try {
    await pipeline(body(range.start, range.end + 1), res);
  } catch (err) {
    if (signal.aborted) {
      req.log?.debug('client went away during an Airflow log read');
      return;
    }
    throw err;
  }
}

/**
 * Bytes [from, to) of the open file. The size was taken when the file was opened, so a log that
 * grows meanwhile is cut there, as serve-logs does; one that shrinks fails the response rather
 * than leaving the client waiting for bytes the Content-Length promised.
 */
async function* fileBytes(fh: FileHandle, from: number, to: number): AsyncGenerator<Uint8Array> {
  for (let pos = from; pos < to; ) {
    const want = Math.min(READ_SIZE, to - pos);
    // A fresh buffer per read: the socket may hold on to the previous one.
    const buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await fh.read(buf, 0, want, pos);
    if (bytesRead === 0) {
      throw new BackendUnavailableError(`the log shrank to ${pos} bytes while it was being sent`);
    }
    pos += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

/** Bytes [from, to) of the archived log; fails when the store delivers fewer or out of order. */
async function* storeBytes(
  chunks: AsyncIterable<{ offset: number; bytes: Uint8Array }>,
  from: number,
  to: number,
): AsyncGenerator<Uint8Array> {
  let pos = from;
  for await (const { offset, bytes } of chunks) {
    if (offset !== pos) {
      throw new BackendUnavailableError(`the archive sent byte ${offset} where ${pos} was due`);
    }
    const piece = bytes.subarray(0, Math.max(0, to - pos));
    pos += piece.length;
    if (piece.length > 0) yield piece;
    if (pos >= to) return;
  }
  if (pos < to) {
    throw new BackendUnavailableError(`the archive ended at byte ${pos} of ${to}`);
  }
}
