import { ApiError, type AttemptRef, apiFetch, logPath, mapQuery } from './api.js';

/** What HEAD says about an attempt's log. */
export interface LogInfo {
  /** Bytes the archive holds (the whole log once complete). */
  size: number;
  complete: boolean;
}

/**
 * HEAD of the log: its size and whether it is complete. An attempt whose archive holds nothing
 * yet answers 404; the caller decides from the catalog whether it is running.
 */
export async function headLog(a: AttemptRef, signal?: AbortSignal): Promise<LogInfo> {
  const res = await apiFetch(logPath(a) + mapQuery(a), { method: 'HEAD', signal });
  const complete = res.headers.get('X-Tasklog-Complete') !== 'false';
  const size = Number(res.headers.get('X-Tasklog-Size') ?? res.headers.get('Content-Length') ?? 0);
  return { size: Number.isFinite(size) ? size : 0, complete };
}

/** Bytes read from the log, and the total size when the answer told it (`bytes a-b/size`). */
export interface ReadRange {
  start: number;
  bytes: Uint8Array;
  /** The whole log's size; undefined while the log is running (`/*`). */
  total: number | undefined;
}

/**
 * Reads bytes [start, end) with a Range request. A running log's Range is answered from what the
 * archive holds, so fewer bytes may come back; a start past them is 416, read as no bytes.
 */
export async function readRange(
  a: AttemptRef,
  start: number,
  end: number,
  signal?: AbortSignal,
): Promise<ReadRange> {
  if (end <= start) return { start, bytes: new Uint8Array(0), total: undefined };
  const res = await apiFetch(logPath(a) + mapQuery(a), {
    signal,
    headers: { Range: `bytes=${start}-${end - 1}` },
    accept: [416],
  });
  const range = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(res.headers.get('Content-Range') ?? '');
  if (res.status === 416) {
    await res.body?.cancel();
    return { start, bytes: new Uint8Array(0), total: undefined };
  }
  if (res.status === 206 && range) {
    const total = range[3] === '*' ? undefined : Number(range[3]);
    return { start: Number(range[1]), bytes: new Uint8Array(await res.arrayBuffer()), total };
  }
  if (res.status === 200) {
    // A server that ignored the Range sends the whole log: read up to `end`, then hang up.
    return { start, bytes: (await readPrefix(res, end)).slice(start, end), total: undefined };
  }
  throw new ApiError(res.status, 'UNEXPECTED', `unexpected answer ${res.status} to a range read`);
}

/** The first `n` bytes of a body, cancelling the rest. */
async function readPrefix(res: Response, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  const reader = res.body!.getReader();
  while (got < n) {
    const { done, value } = await reader.read();
    if (done) break;
    const take = Math.min(value.length, n - got);
    out.set(value.subarray(0, take), got);
    got += take;
  }
  await reader.cancel();
  return out.subarray(0, got);
}
