import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  type AttemptKey,
  type Catalog,
  type LogStore,
  type LogWriter,
  openCatalog,
  PathTemplate,
  Shipper,
  type ShipResult,
} from '@tasklog/core';
import { prng } from '@tasklog/core/testing';
import { attemptKeys } from './attempts.js';
import { sha256 } from './hash.js';
import { makeTempDir, removeTempDir } from './temp-dir.js';

/** The attempts the fault tests write: `faultKey({ taskId: 'writer' })`. */
export const faultKey = attemptKeys({ dagId: 'faults', runId: 'r1', taskId: 'writer' });

/**
 * Appends `log[from, to)` as a shipper following a busy log would: pieces of 1 to
 * `maxPieceBytes` bytes, a flush after a `flushChance` share of them, all drawn from `seed`.
 */
export async function appendInRandomPieces(
  writer: LogWriter,
  log: Buffer,
  options: { seed: number; maxPieceBytes: number; flushChance: number; from?: number; to?: number },
): Promise<void> {
  const rand = prng(options.seed);
  const to = options.to ?? log.length;
  for (let at = options.from ?? 0; at < to; ) {
    const n = Math.min(to - at, 1 + Math.floor(rand() * options.maxPieceBytes));
    await writer.append(log.subarray(at, at + n));
    at += n;
    if (rand() < options.flushChance) await writer.flush();
  }
}

/** Stores `log` as a running attempt that then finishes: appended as appendInRandomPieces does. */
export async function writeInRandomPieces(
  store: LogStore,
  key: AttemptKey,
  log: Buffer,
  options: { seed: number; maxPieceBytes: number; flushChance: number },
): Promise<void> {
  const writer = await store.openWriter(key);
  await appendInRandomPieces(writer, log, options);
  await writer.finish({ size: log.length, sha256: sha256(log) });
}

/** A shipper's home (log folder, state folder, SQLite catalog) in a temporary folder. */
export interface ShipperHome {
  catalog: Catalog;
  /** Puts `log` where Airflow writes the attempt's file and ships it to `store`. */
  ship(store: LogStore, key: AttemptKey, log: Buffer): Promise<ShipResult>;
  close(): Promise<void>;
}

export async function openShipperHome(label: string): Promise<ShipperHome> {
  const home = await makeTempDir(label);
  const catalog = await openCatalog(`sqlite://${join(home, 'catalog.db')}`);
  const pathTemplate = new PathTemplate();
  return {
    catalog,
    async ship(store, key, log) {
      const file = join(home, 'logs', ...pathTemplate.render(key).split('/'));
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, log);
      const shipper = new Shipper({
        store,
        catalog,
        pathTemplate,
        baseLogFolder: join(home, 'logs'),
        stateFolder: join(home, 'state'),
        deleteLocalCopy: false,
      });
      return shipper.shipFile(file);
    },
    async close() {
      await catalog.close();
      await removeTempDir(home);
    },
  };
}
