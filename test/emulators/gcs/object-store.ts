/**
 * The emulator's state: buckets and live objects in memory, object bytes in files. Every state
 * change is a synchronous step (`commit`, `delete`, `patch`), so a request that fails half-way
 * cannot leave a half-made object behind.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import { partitionPoint } from '../shared/binary-search.js';
import { errors } from './api-error.js';

/** An object's bytes on disk. Unlinked once replaced or deleted and no download reads it. */
export class DataFile {
  readers = 0;
  retired = false;
  constructor(readonly path: string) {}
}

export interface ObjectRecord {
  bucket: string;
  name: string;
  generation: number;
  metageneration: number;
  size: number;
  crc32c: number;
  /** Absent on composite objects, as in GCS. */
  md5Hash?: string;
  componentCount?: number;
  contentType?: string;
  contentEncoding?: string;
  contentDisposition?: string;
  contentLanguage?: string;
  cacheControl?: string;
  metadata?: Record<string, string>;
  storageClass: string;
  timeCreated: string;
  updated: string;
  file: DataFile;
}

export interface BucketRecord {
  name: string;
  timeCreated: string;
  updated: string;
  metageneration: number;
  objects: Map<string, ObjectRecord>;
  /** Object names in list order; rebuilt lazily after a name is added or removed. */
  sorted?: string[];
}

export interface Preconditions {
  ifGenerationMatch?: number;
  ifGenerationNotMatch?: number;
  ifMetagenerationMatch?: number;
  ifMetagenerationNotMatch?: number;
}

export type NewObject = Omit<
  ObjectRecord,
  'generation' | 'metageneration' | 'timeCreated' | 'updated' | 'file' | 'storageClass'
> & { filePath: string };

/** The writable string fields of an object resource this emulator keeps (besides metadata). */
export const OBJECT_STRING_FIELDS = [
  'contentType',
  'contentEncoding',
  'contentDisposition',
  'contentLanguage',
  'cacheControl',
] as const;

export interface ObjectPatch {
  contentType?: string | null;
  contentEncoding?: string | null;
  contentDisposition?: string | null;
  contentLanguage?: string | null;
  cacheControl?: string | null;
  metadata?: Record<string, string | null> | null;
}

export interface ListOptions {
  prefix?: string;
  delimiter?: string;
  maxResults: number;
  pageToken?: string;
  startOffset?: string;
  endOffset?: string;
  includeTrailingDelimiter?: boolean;
}

/** One state an object had: every commit (new generation) and every patch (new metageneration). */
export interface ObjectVersion {
  bucket: string;
  name: string;
  generation: number;
  metageneration: number;
  metadata?: Record<string, string>;
}

const HISTORY_LIMIT = 10_000;

export interface ListResult {
  items: ObjectRecord[];
  prefixes: string[];
  nextPageToken?: string;
}

export class ObjectStore {
  readonly #buckets = new Map<string, BucketRecord>();
  #lastGeneration = 0;
  /** The last 10,000 object states, oldest first, so tests can see what an object held when. */
  readonly history: ObjectVersion[] = [];

  constructor(readonly root: string) {}

  async init(): Promise<void> {
    await Promise.all(
      ['objects', 'tmp', 'sessions'].map((d) =>
        mkdir(path.join(this.root, d), { recursive: true }),
      ),
    );
  }

  async close(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }

  /** A fresh path for bytes that are not an object yet. */
  tempPath(): string {
    return path.join(this.root, 'tmp', randomUUID());
  }

  sessionPath(uploadId: string): string {
    return path.join(this.root, 'sessions', uploadId);
  }

  createBucket(name: string): BucketRecord {
    if (this.#buckets.has(name)) {
      throw errors.conflict(
        'Your previous request to create the named bucket succeeded and you already own it.',
      );
    }
    const now = new Date().toISOString();
    const bucket: BucketRecord = {
      name,
      timeCreated: now,
      updated: now,
      metageneration: 1,
      objects: new Map(),
    };
    this.#buckets.set(name, bucket);
    return bucket;
  }

  getBucket(name: string): BucketRecord {
    const bucket = this.#buckets.get(name);
    if (!bucket) throw errors.bucketNotFound();
    return bucket;
  }

  listBuckets(): BucketRecord[] {
    return [...this.#buckets.values()].sort((a, b) => compareNames(a.name, b.name));
  }

  deleteBucket(name: string): void {
    const bucket = this.getBucket(name);
    if (bucket.objects.size > 0)
      throw errors.conflict('The bucket you tried to delete is not empty.');
    this.#buckets.delete(name);
  }

  /** The live object; `generation`, if given, must be the live one (no versioning here). */
  getObject(bucketName: string, name: string, generation?: number): ObjectRecord {
    const obj = this.getBucket(bucketName).objects.get(name);
    if (!obj || (generation !== undefined && obj.generation !== generation)) {
      throw errors.objectNotFound(bucketName, name);
    }
    return obj;
  }

  /**
   * Installs a new generation. Takes ownership of `input.filePath` only on success; on a failed
   * precondition it throws and the caller still owns (and removes) the file.
   */
  commit(input: NewObject, pre: Preconditions = {}): ObjectRecord {
    const bucket = this.getBucket(input.bucket);
    const existing = bucket.objects.get(input.name);
    checkWritePreconditions(existing, pre);
    const now = new Date().toISOString();
    const { filePath, ...fields } = input;
    const obj: ObjectRecord = {
      ...fields,
      generation: this.#nextGeneration(),
      metageneration: 1,
      storageClass: 'STANDARD',
      timeCreated: now,
      updated: now,
      file: new DataFile(filePath),
    };
    bucket.objects.set(obj.name, obj);
    if (!existing) bucket.sorted = undefined;
    else this.#retire(existing.file);
    this.#remember(obj);
    return obj;
  }

  delete(bucketName: string, name: string, pre: Preconditions, generation?: number): void {
    const bucket = this.getBucket(bucketName);
    const obj = this.getObject(bucketName, name, generation);
    checkWritePreconditions(obj, pre);
    bucket.objects.delete(name);
    bucket.sorted = undefined;
    this.#retire(obj.file);
  }

  patch(bucketName: string, name: string, patch: ObjectPatch, pre: Preconditions): ObjectRecord {
    const obj = this.getObject(bucketName, name);
    checkWritePreconditions(obj, pre);
    const next: ObjectRecord = { ...obj, metageneration: obj.metageneration + 1 };
    for (const key of OBJECT_STRING_FIELDS) {
      const value = patch[key];
      if (value === null) delete next[key];
      else if (typeof value === 'string') next[key] = value;
    }
    if (patch.metadata === null) delete next.metadata;
    else if (patch.metadata) {
      const merged: Record<string, string> = { ...obj.metadata };
      for (const [k, v] of Object.entries(patch.metadata)) {
        if (v === null) delete merged[k];
        else merged[k] = String(v);
      }
      // An object whose last custom key was removed shows no `metadata` at all, as on GCS.
      if (Object.keys(merged).length > 0) next.metadata = merged;
      else delete next.metadata;
    }
    next.updated = new Date().toISOString();
    this.getBucket(bucketName).objects.set(name, next);
    this.#remember(next);
    return next;
  }

  /** Pins an object's bytes for reading; call the returned function when done. */
  acquire(obj: ObjectRecord): () => void {
    const file = obj.file;
    file.readers++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      file.readers--;
      if (file.retired && file.readers === 0) void unlink(file.path).catch(() => {});
    };
  }

  list(bucketName: string, opts: ListOptions): ListResult {
    const bucket = this.getBucket(bucketName);
    bucket.sorted ??= [...bucket.objects.keys()].sort(compareNames);
    const keys = bucket.sorted;
    const prefix = opts.prefix ?? '';
    let start = prefix;
    for (const candidate of [opts.startOffset, opts.pageToken && decodePageToken(opts.pageToken)]) {
      if (candidate && compareNames(candidate, start) > 0) start = candidate;
    }
    const items: ObjectRecord[] = [];
    const prefixes: string[] = [];
    let count = 0;
    let i = partitionPoint(keys, (key) => compareNames(key, start) < 0);
    while (i < keys.length) {
      const key = keys[i]!;
      if (!key.startsWith(prefix)) break;
      if (opts.endOffset && compareNames(key, opts.endOffset) >= 0) break;
      if (count >= opts.maxResults) return { items, prefixes, nextPageToken: encodePageToken(key) };
      const cut = opts.delimiter ? key.indexOf(opts.delimiter, prefix.length) : -1;
      if (opts.delimiter && cut >= 0) {
        const p = key.slice(0, cut + opts.delimiter.length);
        prefixes.push(p);
        count++;
        while (i < keys.length && keys[i]!.startsWith(p)) {
          if (opts.includeTrailingDelimiter && keys[i] === p) items.push(bucket.objects.get(p)!);
          i++;
        }
        continue;
      }
      items.push(bucket.objects.get(key)!);
      count++;
      i++;
    }
    return { items, prefixes };
  }

  #remember(obj: ObjectRecord): void {
    const { bucket, name, generation, metageneration, metadata } = obj;
    this.history.push({
      bucket,
      name,
      generation,
      metageneration,
      ...(metadata ? { metadata: { ...metadata } } : {}),
    });
    if (this.history.length > HISTORY_LIMIT) this.history.shift();
  }

  #retire(file: DataFile): void {
    file.retired = true;
    if (file.readers === 0) void unlink(file.path).catch(() => {});
  }

  /** GCS generations are microsecond timestamps; kept strictly increasing here. */
  #nextGeneration(): number {
    this.#lastGeneration = Math.max(Date.now() * 1000, this.#lastGeneration + 1);
    return this.#lastGeneration;
  }
}

export function checkWritePreconditions(obj: ObjectRecord | undefined, pre: Preconditions): void {
  const failed = preconditionFailure(obj, pre);
  if (failed) throw errors.conditionNotMet(failed);
}

/** Which header a precondition failure maps to, or undefined when all hold. */
export function preconditionFailure(
  obj: ObjectRecord | undefined,
  pre: Preconditions,
): 'If-Match' | 'If-None-Match' | undefined {
  if (pre.ifGenerationMatch !== undefined) {
    const ok =
      pre.ifGenerationMatch === 0 ? !obj : !!obj && obj.generation === pre.ifGenerationMatch;
    if (!ok) return 'If-Match';
  }
  if (pre.ifGenerationNotMatch !== undefined) {
    const ok =
      pre.ifGenerationNotMatch === 0 ? !!obj : !!obj && obj.generation !== pre.ifGenerationNotMatch;
    if (!ok) return 'If-None-Match';
  }
  if (pre.ifMetagenerationMatch !== undefined) {
    if (!obj || obj.metageneration !== pre.ifMetagenerationMatch) return 'If-Match';
  }
  if (pre.ifMetagenerationNotMatch !== undefined) {
    if (!obj || obj.metageneration === pre.ifMetagenerationNotMatch) return 'If-None-Match';
  }
  return undefined;
}

/**
 * GCS lists in UTF-8 byte order, which is code point order. JS compares UTF-16 code units, which
 * disagrees only between surrogates and U+E000..U+FFFF; shifting those two ranges fixes it.
 */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** Opaque to clients; holds the first name of the next page. */
function encodePageToken(nextName: string): string {
  return Buffer.from(`v1:${nextName}`, 'utf8').toString('base64url');
}

function decodePageToken(token: string): string {
  const text = Buffer.from(token, 'base64url').toString('utf8');
  if (!text.startsWith('v1:')) throw errors.invalid('Invalid page token.');
  return text.slice(3);
}
