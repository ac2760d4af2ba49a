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
import { prng, randomLogBytes } from '@tasklog/core/testing';
import { expect, it } from 'vitest';
import { digestStored } from '../../packages/core/src/hashing.js';
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

/** A blob store with a share of its requests failing, as a fault test file sets it up. */
export interface BlobStoreUnderFaults {
  store: LogStore;
  home: ShipperHome;
  /** The names of the objects under an attempt's relative path, seen past the faults. */
  objectsOf(relativePath: string): Promise<string[]>;
}

/** The two logs `itEndsByteIdenticalThroughFaults` stores: sizes in MiB, seeds of their bytes. */
export interface FaultLogs {
  /** Written by a running attempt's writer, appended as appendInRandomPieces does, then finished. */
  running: { mib: number; seed: number; pieces: { seed: number; maxPieceBytes: number } };
  /** A finished log the shipper ships. */
  shipped: { mib: number; seed: number };
}

/**
 * Declares what a blob store must do with its requests failing: a running attempt written piece by
 * piece and a finished log shipped by the shipper each end byte-identical, as exactly one object
 * at the attempt's key (`logs/<relative path>`). `afterRunning` and `afterShipped` then check
 * what the faults left to see.
 */
export function itEndsByteIdenticalThroughFaults(
  logs: FaultLogs,
  setup: () => BlobStoreUnderFaults,
  checks: { afterRunning?(): void; afterShipped?(key: AttemptKey): Promise<void> } = {},
): void {
  const template = new PathTemplate();
  const MiB = 1024 * 1024;

  it('writes a running attempt chunk by chunk and finishes it byte-identical, leaving no chunk objects', async () => {
    const { store, objectsOf } = setup();
    const key = faultKey({ taskId: 'writer' });
    const log = randomLogBytes(logs.running.mib * MiB, logs.running.seed);
    await writeInRandomPieces(store, key, log, { ...logs.running.pieces, flushChance: 0.3 });
    expect(await digestStored(store, key)).toEqual({ size: log.length, sha256: sha256(log) });
    expect(await objectsOf(template.render(key))).toEqual([`logs/${template.render(key)}`]);
    checks.afterRunning?.();
  });

  it(`ships a finished ${logs.shipped.mib} MB log byte-identical through the shipper`, async () => {
    const { store, home, objectsOf } = setup();
    const key = faultKey({ taskId: 'shipper' });
    const rel = template.render(key);
    const log = randomLogBytes(logs.shipped.mib * MiB, logs.shipped.seed);
    const result = await home.ship(store, key, log);
    expect(result).toMatchObject({ outcome: 'shipped', size: log.length, sha256: sha256(log) });
    expect(await digestStored(store, key)).toEqual({ size: log.length, sha256: sha256(log) });
    expect(await objectsOf(rel)).toEqual([`logs/${rel}`]);
    await checks.afterShipped?.(key);
  });
}
