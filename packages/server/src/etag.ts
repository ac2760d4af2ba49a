/** The strong ETag of a complete log: its content hash, so every proxy replica agrees on it. */
export function logEtag(sha256: string): string {
  return `"sha256:${sha256}"`;
}

/** `If-None-Match` (weak comparison, RFC 9110 §13.1.2): true when the client's copy is current. */
export function ifNoneMatchMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  const opaque = etag.replace(/^W\//, '');
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === opaque);
}

/**
 * `If-Range` (RFC 9110 §13.1.5): the Range applies only when the client's validator still
 * matches, compared strongly. A date never matches because no Last-Modified is sent.
 */
export function ifRangeAllows(header: string | undefined, etag: string | undefined): boolean {
  if (header === undefined) return true;
  const tag = header.trim();
  return etag !== undefined && !tag.startsWith('W/') && tag === etag;
}
