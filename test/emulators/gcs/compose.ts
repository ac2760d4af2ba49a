/**
 * objects.compose (https://cloud.google.com/storage/docs/json_api/v1/objects/compose): 1..32
 * sources from the same bucket, concatenated. Like GCS, the result has a CRC32C (of the
 * concatenation) but no MD5, and a `componentCount` capped at 1024.
 */
import { createReadStream } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { errors, GcsApiError } from './api-error.js';
import { crc32c } from './crc32c.js';
import { objectFields, requireName } from './object-fields.js';
import { checkWritePreconditions, type ObjectRecord, type ObjectStore } from './object-store.js';
import { parsePreconditions } from './wire.js';

export const MAX_COMPOSE_SOURCES = 32;
export const MAX_COMPONENT_COUNT = 1024;

export async function composeObject(
  store: ObjectStore,
  bucket: string,
  destName: string,
  body: Record<string, unknown>,
  query: URLSearchParams,
): Promise<ObjectRecord> {
  requireName(destName);
  const existing = store.getBucket(bucket).objects.get(destName);
  const sources = body.sourceObjects;
  if (!Array.isArray(sources) || sources.length === 0) throw errors.required('sourceObjects');
  if (sources.length > MAX_COMPOSE_SOURCES) {
    throw errors.invalid(
      `The number of source components provided (${sources.length}) exceeds the maximum (${MAX_COMPOSE_SOURCES})`,
    );
  }
  const destination = body.destination ?? {};
  if (typeof destination !== 'object' || destination === null || Array.isArray(destination)) {
    throw errors.invalid('Invalid value for destination: expected an object.');
  }
  const fields = objectFields(destination as Record<string, unknown>);
  const pre = parsePreconditions(query);
  checkWritePreconditions(existing, pre);

  const objects = sources.map((source: unknown) => resolveSource(store, bucket, source));
  const componentCount = objects.reduce((n, o) => n + (o.componentCount ?? 1), 0);
  if (componentCount > MAX_COMPONENT_COUNT) {
    throw errors.invalid(
      `The composite object would have ${componentCount} components, more than the maximum (${MAX_COMPONENT_COUNT}).`,
    );
  }
  // Pinned before the first await, so the sources read are the generations just checked.
  const releases = objects.map((o) => store.acquire(o));
  const file = store.tempPath();
  let crc = 0;
  let size = 0;
  try {
    const out = await open(file, 'w');
    try {
      for (const obj of objects) {
        for await (const chunk of createReadStream(obj.file.path)) {
          const buf = chunk as Buffer;
          crc = crc32c(buf, crc);
          let off = 0;
          while (off < buf.length) {
            const { bytesWritten } = await out.write(buf, off, buf.length - off, size + off);
            off += bytesWritten;
          }
          size += buf.length;
        }
      }
    } finally {
      await out.close();
    }
  } catch (err) {
    await unlink(file).catch(() => {});
    throw err;
  } finally {
    for (const release of releases) release();
  }
  try {
    return store.commit(
      { bucket, name: destName, filePath: file, size, crc32c: crc, componentCount, ...fields },
      pre,
    );
  } catch (err) {
    await unlink(file).catch(() => {});
    throw err;
  }
}

function resolveSource(store: ObjectStore, bucket: string, source: unknown): ObjectRecord {
  if (typeof source !== 'object' || source === null) throw errors.invalid('Invalid source object.');
  const s = source as Record<string, unknown>;
  if (typeof s.name !== 'string' || !s.name) throw errors.required('sourceObjects.name');
  const generation = toInt(s.generation, 'sourceObjects.generation');
  const obj = store.getObject(bucket, s.name, generation);
  const pre = s.objectPreconditions as Record<string, unknown> | undefined;
  const match = toInt(
    pre?.ifGenerationMatch,
    'sourceObjects.objectPreconditions.ifGenerationMatch',
  );
  if (match !== undefined && match !== obj.generation) throw errors.conditionNotMet();
  return obj;
}

function toInt(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n =
    typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : Number.NaN;
  if (!Number.isInteger(n))
    throw new GcsApiError(400, 'invalid', `Invalid value for ${name}: ${String(value)}`);
  return n;
}
