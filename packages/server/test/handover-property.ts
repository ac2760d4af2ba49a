import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { followPath, type LiveFixture, liveKey, prng } from './live-fixture.js';

export const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface NdjsonResult {
  bytes: Buffer;
  events: { event: string; offset: number }[];
  eof?: { offset: number; complete: boolean };
}

/** Rebuilds the log from NDJSON records, checking that they are contiguous from `start`. */
export function decodeNdjson(body: string, start: number): NdjsonResult {
  const parts: Buffer[] = [];
  const events: { event: string; offset: number }[] = [];
  let at = start;
  let eof: NdjsonResult['eof'];
  for (const line of body.split('\n')) {
    if (!line) continue;
    const r = JSON.parse(line);
    if (r.event) events.push(r);
    else if (r.eof) eof = { offset: r.offset, complete: r.complete };
    else {
      expect(r.offset).toBe(at);
      const b = r.text !== undefined ? Buffer.from(r.text, 'utf8') : Buffer.from(r.bytes, 'base64');
      parts.push(b);
      at += b.length;
    }
  }
  return { bytes: Buffer.concat(parts), events, eof };
}

export function parseSse(body: string): { id?: string; event?: string; data?: string }[] {
  return body
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      const ev: { id?: string; event?: string; data?: string } = {};
      for (const line of block.split('\n')) {
        const m = /^(id|event|data): (.*)$/.exec(line);
        if (m) ev[m[1] as 'id' | 'event' | 'data'] = m[2];
      }
      return ev;
    })
    .filter((e) => e.event);
}

export function randomLines(rand: () => number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => {
    const len = 1 + Math.floor(rand() * 3000);
    return `${i}:${'x'.repeat(len)}\n`;
  });
}

/**
 * The hand-over property, one seeded case: a writer appends random-size lines with random
 * pauses, followers join at random offsets (text or NDJSON), the attempt finishes at a random
 * moment; every follower's output must equal the final log from its offset (sha256).
 */
export async function handoverProperty(f: LiveFixture, seed: number): Promise<void> {
  const rand = prng(seed);
  const k = liveKey();
  await f.startRunning(k, 'first line\n');
  let written = 'first line\n'.length;
  const lines = randomLines(rand, 60);
  const finishAt = 20 + Math.floor(rand() * 40);
  const followers: Promise<{ offset: number; body: Buffer; ndjson: boolean }>[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (i === finishAt) break;
    await f.append(k, lines[i]!);
    written += lines[i]!.length;
    if (rand() < 0.2) {
      const offset = Math.floor(rand() * (written + 1));
      const ndjson = rand() < 0.5;
      followers.push(
        fetch(`${f.proxy.url}${followPath(k, `offset=${offset}`)}`, {
          headers: { accept: ndjson ? 'application/x-ndjson' : 'text/plain' },
        }).then(async (res) => {
          expect(res.status).toBe(200);
          return { offset, ndjson, body: Buffer.from(await res.arrayBuffer()) };
        }),
      );
    }
    await sleep(Math.floor(rand() * 15));
  }
  await f.finish(k);
  const results = await Promise.all(followers);
  const final = await readFile(f.fileOf(k));
  expect(results.length).toBeGreaterThan(0);
  for (const r of results) {
    const expected = final.subarray(r.offset);
    if (r.ndjson) {
      const decoded = decodeNdjson(r.body.toString('utf8'), r.offset);
      expect(decoded.eof).toEqual({ offset: final.length, complete: true });
      expect(sha(decoded.bytes)).toBe(sha(expected));
    } else {
      expect(sha(r.body)).toBe(sha(expected));
    }
  }
}
