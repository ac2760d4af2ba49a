/**
 * Reads a `multipart/related` upload body (JSON metadata part, then the media part) that has
 * already been spooled to a file, without loading the media into memory: only the head and the
 * tail of the file are read, the media part is returned as a byte range.
 * (https://cloud.google.com/storage/docs/uploading-objects#uploading-an-object — multipart)
 */
import { open } from 'node:fs/promises';
import { errors } from './api-error.js';

/** The JSON metadata part is small (custom metadata is capped at 8 KiB); this bounds the scan. */
const HEAD_BYTES = 1024 * 1024;
const TAIL_BYTES = 4096;

export interface MultipartUpload {
  metadata: Record<string, unknown>;
  mediaContentType: string | undefined;
  /** Byte range of the media part within the spooled file: [start, end). */
  start: number;
  end: number;
}

/**
 * The boundary parameter of a `multipart/related` Content-Type. RFC 2046 allows it bare or in
 * double quotes; Google's own CLI (`gcloud storage cp`, through Python's email package) sends it
 * in single quotes (`boundary='===============123=='`), which GCS accepts, so those go too.
 */
export function boundaryOf(contentType: string | undefined): string | undefined {
  if (!contentType || !/^multipart\/related\b/i.test(contentType)) return undefined;
  const m = /;\s*boundary=(?:"([^"]+)"|'([^']+)'|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2] ?? m[3]) : undefined;
}

/**
 * Lines of the body end in CRLF (RFC 2046) or, as Google's Python clients send them (Python's
 * email generator), in a bare LF; the first boundary line says which, and the line end before
 * each later boundary belongs to that boundary, not to the part.
 */
export async function parseMultipartFile(file: string, boundary: string): Promise<MultipartUpload> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const headLen = Math.min(size, HEAD_BYTES);
    const head = Buffer.alloc(headLen);
    await fh.read(head, 0, headLen, 0);
    const dash = Buffer.from(`--${boundary}`);

    const first = head.indexOf(dash);
    if (first < 0) throw bad('missing the first boundary');
    const afterFirst = first + dash.length;
    const eol = head[afterFirst] === 0x0a ? '\n' : '\r\n';
    const delimiter = Buffer.from(`${eol}--${boundary}`);
    const headerEnd = `${eol}${eol}`;

    const metaHeadersStart = skipLineEnd(head, afterFirst);
    const metaHeadersEnd = head.indexOf(headerEnd, metaHeadersStart);
    if (metaHeadersEnd < 0) throw bad('metadata part has no header end');
    const metaBodyStart = metaHeadersEnd + headerEnd.length;
    const metaBodyEnd = head.indexOf(delimiter, metaBodyStart);
    if (metaBodyEnd < 0) throw bad('metadata part is not followed by a boundary');
    const mediaHeadersStart = skipLineEnd(head, metaBodyEnd + delimiter.length);
    const mediaHeadersEnd = head.indexOf(headerEnd, mediaHeadersStart);
    if (mediaHeadersEnd < 0) throw bad('media part has no header end');
    const mediaHeaders = parseHeaders(head.subarray(mediaHeadersStart, mediaHeadersEnd));
    const start = mediaHeadersEnd + headerEnd.length;

    const tailStart = Math.max(start, size - TAIL_BYTES);
    const tail = Buffer.alloc(size - tailStart);
    await fh.read(tail, 0, tail.length, tailStart);
    const closing = tail.lastIndexOf(Buffer.from(`${eol}--${boundary}--`));
    if (closing < 0) throw bad('missing the closing boundary');

    let metadata: unknown;
    try {
      const text = head.subarray(metaBodyStart, metaBodyEnd).toString('utf8').trim();
      metadata = text ? JSON.parse(text) : {};
    } catch (cause) {
      throw Object.assign(bad('metadata part is not valid JSON'), { cause });
    }
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw bad('metadata part must be a JSON object');
    }
    return {
      metadata: metadata as Record<string, unknown>,
      mediaContentType: mediaHeaders.get('content-type'),
      start,
      end: tailStart + closing,
    };
  } finally {
    await fh.close();
  }
}

function skipLineEnd(buf: Buffer, at: number): number {
  if (buf[at] === 0x0d && buf[at + 1] === 0x0a) return at + 2;
  return buf[at] === 0x0a ? at + 1 : at;
}

function parseHeaders(block: Buffer): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of block.toString('latin1').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0)
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

function bad(detail: string) {
  return errors.invalid(`Invalid multipart request: ${detail}.`);
}
