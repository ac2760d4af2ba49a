import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { prng } from '@tasklog/core/testing';

const WORDS = [
  'INFO',
  'task',
  'é',
  '€',
  '日本語',
  '𝄞',
  'résumé',
  'data',
  '—',
  'ok',
  'Привет',
  '\t',
  '🙂',
];

/**
 * Writes a log of about `bytes` bytes: mostly ordinary lines, some very long ones (up to
 * 300 KiB), multi-byte characters everywhere, some CRLF, no trailing newline. Streamed.
 */
export async function writeTestLog(
  path: string,
  bytes: number,
  seed = 1,
): Promise<{ size: number; sha256: string }> {
  await mkdir(dirname(path), { recursive: true });
  const rand = prng(seed);
  const out = createWriteStream(path);
  const hash = createHash('sha256');
  let size = 0;
  let line = 0;
  while (size < bytes) {
    const long = rand() < 0.002;
    const words = long ? 20_000 + Math.floor(rand() * 20_000) : 1 + Math.floor(rand() * 30);
    const parts: string[] = [`[${line++}]`];
    for (let i = 0; i < words; i++) parts.push(WORDS[Math.floor(rand() * WORDS.length)]!);
    const eol = rand() < 0.05 ? '\r\n' : '\n';
    let text = parts.join(' ') + eol;
    if (size + Buffer.byteLength(text) >= bytes) text = text.trimEnd();
    const buf = Buffer.from(text);
    hash.update(buf);
    size += buf.length;
    if (!out.write(buf)) await once(out, 'drain');
    if (text !== parts.join(' ') + eol) break;
  }
  out.end();
  await once(out, 'finish');
  return { size, sha256: hash.digest('hex') };
}

/** sha256 of bytes [start, end) of a file, streamed. */
export async function digestRange(
  path: string,
  start = 0,
): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const b of createReadStream(path, { start })) {
    hash.update(b as Buffer);
    size += (b as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}

/** `size` seeded random bytes: data that does not compress, with a `\n` about every 256 bytes. */
export function noise(size: number, seed = 1): Buffer {
  const rand = prng(seed);
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = Math.floor(rand() * 256);
  return out;
}
