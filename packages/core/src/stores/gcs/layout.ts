import type { File } from '@google-cloud/storage';
import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import type { AttemptFilter, PathTemplate } from '../../path-template.js';
import {
  contiguousRun,
  legacyRunningPrefix,
  logNameOf,
  matchesFilter,
  parseChunkName,
  runningPrefix,
} from '../shared/chunk-layout.js';
import type { Backend } from './client.js';

// Where an attempt's objects live in the bucket, and what a running attempt's objects hold.

/**
 * Marks a running attempt before its first flush, so it is listed and readable (as empty) from
 * the moment a writer opens, like a local chunk folder. Not a chunk name, so never log bytes.
 */
export const RUNNING_MARKER = 'running';

export interface Location {
  /** Relative path of the finished log, as the template renders it. */
  rel: string;
  /** Object name of the finished log. */
  final: string;
  /** Object name prefix of the running attempt's chunks, ending in `/` (see `runningPrefix`). */
  chunkPrefix: string;
  /** Where archives written before `runningPrefix` keep chunks: read, resumed and removed, never written. */
  legacyChunkPrefix: string;
}

export interface ChunkObject {
  offset: number;
  size: number;
  file: File;
}

export interface ChunkListing {
  /** The contiguous run from byte 0 (see `contiguousRun`). */
  chunks: ChunkObject[];
  committed: number;
  /** Chunk objects outside that run. */
  discarded: ChunkObject[];
  /** Every object under the chunk prefix: chunks, the running marker, compose leftovers. */
  all: File[];
  modifiedAt?: Date;
}

export function locate(prefix: string, pathTemplate: PathTemplate, key: AttemptKey): Location {
  const rel = pathTemplate.render(attemptKey(key));
  const final = prefix ? `${prefix}/${rel}` : rel;
  return {
    rel,
    final,
    chunkPrefix: runningPrefix(final),
    legacyChunkPrefix: legacyRunningPrefix(final),
  };
}

/**
 * Every attempt, finished or running, whose objects lie under `prefix` and which matches
 * `wanted`, each once. A finished log `rel`, its chunks `.rel.chunks/...` and an older archive's
 * `rel.chunks/...` all name one attempt. Names come in byte order, and all of them sort below the
 * later of `.rel.chunks0` and `rel.chunks0` ('0' follows '/'), so a remembered attempt is
 * forgotten once the listing passes that bound: memory stays bounded by the attempts whose
 * objects are interleaved, not by the archive.
 */
export async function* listAttempts(
  be: Backend,
  prefix: string,
  pathTemplate: PathTemplate,
  wanted: AttemptFilter,
  signal?: AbortSignal,
): AsyncGenerator<AttemptKey> {
  const root = prefix ? `${prefix}/` : '';
  const seen = new Map<string, Buffer>();
  for await (const name of be.listNames(root + pathTemplate.prefix(wanted), signal)) {
    const here = Buffer.from(name);
    for (const [rel, bound] of seen) {
      if (Buffer.compare(here, bound) >= 0) seen.delete(rel);
    }
    const found = attemptOf(pathTemplate, name.slice(root.length));
    if (!found || seen.has(found.rel)) continue;
    const ends = [runningPrefix(root + found.rel), legacyRunningPrefix(root + found.rel)].map(
      (area) => Buffer.from(`${area.slice(0, -1)}0`),
    );
    seen.set(found.rel, Buffer.compare(ends[0]!, ends[1]!) > 0 ? ends[0]! : ends[1]!);
    if (matchesFilter(found.key, wanted)) yield found.key;
  }
}

/**
 * The attempt an object name (relative to the prefix) belongs to: its log, or an object of its
 * running attempt (a chunk, the marker, a compose intermediate).
 */
function attemptOf(
  pathTemplate: PathTemplate,
  name: string,
): { rel: string; key: AttemptKey } | undefined {
  const rel = logNameOf(name);
  const key = pathTemplate.tryParse(rel);
  if (!key) return undefined;
  try {
    return pathTemplate.render(key) === rel ? { rel, key } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Every object of a running attempt, in its place and in the place older archives kept it (a
 * writer resumed on an old archive continues in the new place, so one attempt may have both).
 */
export async function listRunning(
  be: Backend,
  loc: Location,
  signal?: AbortSignal,
): Promise<File[]> {
  return [
    ...(await be.listAll(loc.chunkPrefix, signal)),
    ...(await be.listAll(loc.legacyChunkPrefix, signal)),
  ];
}

export async function listChunks(
  be: Backend,
  loc: Location,
  signal?: AbortSignal,
): Promise<ChunkListing> {
  const all = await listRunning(be, loc, signal);
  const candidates: ChunkObject[] = [];
  let modifiedAt: Date | undefined;
  for (const file of all) {
    const updated = file.metadata.updated ? new Date(file.metadata.updated) : undefined;
    if (updated && (!modifiedAt || updated > modifiedAt)) modifiedAt = updated;
    const offset = parseChunkName(file.name.slice(file.name.lastIndexOf('/') + 1));
    if (offset !== undefined) candidates.push({ offset, size: Number(file.metadata.size), file });
  }
  const run = contiguousRun(candidates);
  return {
    chunks: run.chunks,
    committed: run.committed,
    discarded: run.discarded,
    all,
    modifiedAt,
  };
}
