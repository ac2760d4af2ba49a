/**
 * JSON resources as the API returns them
 * (https://cloud.google.com/storage/docs/json_api/v1/objects#resource). int64 fields are strings.
 */
import { crc32cToBase64 } from './crc32c.js';
import type { BucketRecord, ObjectRecord } from './object-store.js';

export function objectResource(obj: ObjectRecord, baseUrl: string): Record<string, unknown> {
  const bucket = encodeURIComponent(obj.bucket);
  const name = encodeURIComponent(obj.name);
  const resource: Record<string, unknown> = {
    kind: 'storage#object',
    id: `${obj.bucket}/${obj.name}/${obj.generation}`,
    selfLink: `${baseUrl}/storage/v1/b/${bucket}/o/${name}`,
    mediaLink: `${baseUrl}/download/storage/v1/b/${bucket}/o/${name}?generation=${obj.generation}&alt=media`,
    name: obj.name,
    bucket: obj.bucket,
    generation: String(obj.generation),
    metageneration: String(obj.metageneration),
    contentType: obj.contentType,
    contentEncoding: obj.contentEncoding,
    contentDisposition: obj.contentDisposition,
    contentLanguage: obj.contentLanguage,
    cacheControl: obj.cacheControl,
    storageClass: obj.storageClass,
    size: String(obj.size),
    md5Hash: obj.md5Hash,
    crc32c: crc32cToBase64(obj.crc32c),
    componentCount: obj.componentCount,
    etag: objectEtag(obj),
    timeCreated: obj.timeCreated,
    updated: obj.updated,
    timeStorageClassUpdated: obj.timeCreated,
    metadata: obj.metadata,
  };
  for (const key of Object.keys(resource)) if (resource[key] === undefined) delete resource[key];
  return resource;
}

/** Opaque, and changes with generation or metageneration, like the real one. */
export function objectEtag(obj: ObjectRecord): string {
  return Buffer.from(`${obj.generation}/${obj.metageneration}`).toString('base64');
}

export function bucketResource(bucket: BucketRecord, baseUrl: string): Record<string, unknown> {
  return {
    kind: 'storage#bucket',
    id: bucket.name,
    selfLink: `${baseUrl}/storage/v1/b/${encodeURIComponent(bucket.name)}`,
    projectNumber: '0',
    name: bucket.name,
    timeCreated: bucket.timeCreated,
    updated: bucket.updated,
    metageneration: String(bucket.metageneration),
    location: 'US',
    locationType: 'multi-region',
    storageClass: 'STANDARD',
    etag: Buffer.from(`${bucket.name}/${bucket.metageneration}`).toString('base64'),
  };
}
