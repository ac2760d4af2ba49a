/**
 * What an upload's or a compose's metadata says: the object fields this emulator keeps, the
 * hashes the client expects, and whether the object name is valid.
 */
import { errors, GcsApiError } from './api-error.js';
import { crc32cFromBase64, crc32cToBase64 } from './crc32c.js';
import { type NewObject, OBJECT_STRING_FIELDS } from './object-store.js';

export type ObjectFields = Pick<NewObject, (typeof OBJECT_STRING_FIELDS)[number] | 'metadata'>;

export interface ExpectedHashes {
  crc32c?: string;
  md5?: string;
}

export function verifyHashes(
  crc: number,
  md5Hash: string,
  ...expectations: ExpectedHashes[]
): void {
  for (const expected of expectations) {
    if (expected.crc32c !== undefined && crc32cFromBase64(expected.crc32c) !== crc) {
      throw errors.invalid(
        `Provided CRC32C "${expected.crc32c}" doesn't match calculated CRC32C "${crc32cToBase64(crc)}".`,
      );
    }
    if (expected.md5 !== undefined && expected.md5 !== md5Hash) {
      throw errors.invalid(
        `Provided MD5 hash "${expected.md5}" doesn't match calculated MD5 hash "${md5Hash}".`,
      );
    }
  }
}

export function expectedHashes(meta: Record<string, unknown>): ExpectedHashes {
  const out: ExpectedHashes = {};
  const crc = stringField(meta, 'crc32c');
  const md5 = stringField(meta, 'md5Hash');
  if (crc !== undefined) out.crc32c = crc;
  if (md5 !== undefined) out.md5 = md5;
  return out;
}

/** The writable fields of an object resource that this emulator keeps. */
export function objectFields(meta: Record<string, unknown>): ObjectFields {
  const fields: ObjectFields = {};
  for (const key of OBJECT_STRING_FIELDS) {
    const value = stringField(meta, key);
    if (value) fields[key] = value;
  }
  const custom = meta.metadata;
  if (custom !== undefined && custom !== null) {
    if (typeof custom !== 'object' || Array.isArray(custom)) {
      throw errors.invalid('Invalid value for metadata: expected an object.');
    }
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(custom)) {
      if (v !== null && v !== undefined) metadata[k] = String(v);
    }
    fields.metadata = metadata;
  }
  return fields;
}

export function stringField(meta: Record<string, unknown>, key: string): string | undefined {
  const value = meta[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string')
    throw errors.invalid(`Invalid value for ${key}: expected a string.`);
  return value;
}

/** Object names: 1..1024 bytes of UTF-8, no CR or LF, not `.` or `..`. */
export function requireName(name: string | null | undefined): string {
  if (!name) throw errors.required('name');
  if (
    Buffer.byteLength(name) > 1024 ||
    /[\r\n]/.test(name) ||
    name === '.' ||
    name === '..' ||
    name.startsWith('.well-known/acme-challenge/')
  ) {
    throw new GcsApiError(400, 'invalid', `The object name '${name}' is invalid.`);
  }
  return name;
}
