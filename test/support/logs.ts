import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';

/** A small deterministic PRNG (mulberry32), so generated logs are the same on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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

/** `bytes` bytes of seeded random log text: multi-byte characters, CRLF and long runs. */
export function randomLogBytes(bytes: number, seed: number): Buffer {
  const rand = prng(seed);
  const words = ['INFO', 'é', '€', '𝄞', 'data', 'ok', '\r\n', '\n', 'x'.repeat(300)];
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const w = words[Math.floor(rand() * words.length)]!;
    parts.push(w);
    size += Buffer.byteLength(w) + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, bytes);
}
