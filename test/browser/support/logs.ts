import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { attemptKey, openCatalog, PathTemplate } from '@tasklog/core';

/** Bytes of each line of `writeNumberedLog`: a line's offset is (number - 1) * this. */
export const NUMBERED_LINE_BYTES = 64;

/** The text of line `n` (1-based) of `writeNumberedLog`, without its `\n`. */
export function numberedLine(n: number): string {
  const head = `line ${String(n).padStart(9, '0')} of a generated log `;
  return head.padEnd(NUMBERED_LINE_BYTES - 1, '.');
}

/**
 * Writes a log of `lines` distinct lines of 64 bytes (`line 000000001 of a generated log ....`),
 * fast enough for 1 GiB (16,777,216 lines) in a few seconds: each 4 MiB block is a copy of a
 * template whose digits are rewritten in place.
 */
export async function writeNumberedLog(path: string, lines: number): Promise<number> {
  await mkdir(dirname(path), { recursive: true });
  const perBlock = 65_536;
  const template = Buffer.alloc(perBlock * NUMBERED_LINE_BYTES);
  for (let i = 0; i < perBlock; i++) {
    template.write(`${numberedLine(1)}\n`, i * NUMBERED_LINE_BYTES, 'latin1');
  }
  const out = createWriteStream(path, { highWaterMark: 8 * 1024 * 1024 });
  for (let first = 1; first <= lines; first += perBlock) {
    const count = Math.min(perBlock, lines - first + 1);
    const block = Buffer.from(template.subarray(0, count * NUMBERED_LINE_BYTES));
    for (let i = 0; i < count; i++) {
      // The 9 digits after `line `.
      let n = first + i;
      const at = i * NUMBERED_LINE_BYTES + 5 + 8;
      for (let d = 0; d < 9; d++) {
        block[at - d] = 48 + (n % 10);
        n = Math.floor(n / 10);
      }
    }
    if (!out.write(block)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return lines * NUMBERED_LINE_BYTES;
}

export interface Archived {
  dagId: string;
  runId: string;
  taskId: string;
  tryNumber?: number;
  mapIndex?: number;
}

/** Where the local archive of the TASKLOG_HOME `home` keeps an attempt's finished log. */
export function archivePath(home: string, a: Archived): string {
  const rel = new PathTemplate().render(attemptKey({ ...a, tryNumber: a.tryNumber ?? 1 }));
  return join(home, 'archive', ...rel.split('/'));
}

/**
 * Records archived attempts in the home's catalog, as `tasklog ship` would after copying them
 * (the files are written into the archive directly: shipping 1 GiB would only copy it again).
 */
export async function catalogShipped(home: string, attempts: (Archived & { size: number })[]) {
  const catalog = await openCatalog(`sqlite://${join(home, 'catalog.db')}`);
  try {
    for (const a of attempts) {
      const key = attemptKey({ ...a, tryNumber: a.tryNumber ?? 1 });
      await catalog.upsert(key, {
        relativePath: new PathTemplate().render(key),
        state: 'shipped',
        size: a.size,
        shippedAt: new Date(),
      });
    }
  } finally {
    await catalog.close();
  }
}

/** The viewer's URL of an attempt's log. */
export function logPageUrl(base: string, a: Archived): string {
  const e = encodeURIComponent;
  const q = a.mapIndex !== undefined && a.mapIndex >= 0 ? `?mapIndex=${a.mapIndex}` : '';
  return `${base}/dags/${e(a.dagId)}/runs/${e(a.runId)}/tasks/${e(a.taskId)}/attempts/${a.tryNumber ?? 1}${q}`;
}
