import type { ApiEntryOut } from './entries.js';
import {
  encodeStringMap,
  fieldSize,
  lengthTag,
  stringMapEntrySize,
  varintSize,
  varintTag,
  writeFieldHead,
  writeStringField,
  writeStringMapEntry,
  writeVarint,
} from './protobuf.js';

// tasklog's entries as `google.logging.v2.LogEntry` protobuf bytes, and the WriteLogEntriesRequest
// around them, for the gRPC transport: what @grpc/proto-loader's serializer (protobufjs
// `fromObject` + `encode`) makes of ApiEntryOut objects, byte for byte (fields in number order,
// map entries in key order, zero timestamps and an empty textPayload written), without building
// the objects. Field numbers: google/logging/v2/log_entry.proto, logging.proto,
// google/protobuf/struct.proto and timestamp.proto, google/api/monitored_resource.proto.

const ENTRY = {
  textPayload: lengthTag(3),
  insertId: lengthTag(4),
  jsonPayload: lengthTag(6),
  timestamp: lengthTag(9),
  labels: lengthTag(11),
} as const;
const TIMESTAMP = { seconds: varintTag(1), nanos: varintTag(2) } as const;
/** google.protobuf.Struct `fields` (map<string, Value>) and its entries' key and value. */
const STRUCT = { fields: lengthTag(1), key: lengthTag(1), value: lengthTag(2) } as const;
const VALUE_STRING = lengthTag(3);
const REQUEST = {
  logName: lengthTag(1),
  resource: lengthTag(2),
  entries: lengthTag(4),
  partialSuccess: varintTag(5),
} as const;
const RESOURCE = { type: lengthTag(1), labels: lengthTag(2) } as const;

/** One entry as the encoder takes it: ApiEntryOut's fields, the payload as plain strings. */
export interface EntryFields {
  seconds: number;
  nanos: number;
  insertId: string;
  /** Labels after the encoder's fixed ones. */
  labels: Record<string, string>;
  textPayload?: string;
  /** jsonPayload, a Struct of string values. */
  payload?: Record<string, string>;
}

/**
 * Encodes the LogEntries of one attempt; its labels (the same on every entry) are encoded once
 * and copied into each entry ahead of the entry's own.
 */
export class LogEntryEncoder {
  readonly #fixed: Buffer;
  /** UTF-8 lengths measured while sizing an entry, read back while writing it. */
  readonly #lengths: number[] = [];

  constructor(fixedLabels: Record<string, string> = {}) {
    this.#fixed = encodeStringMap(ENTRY.labels, fixedLabels);
  }

  /** The entry's LogEntry bytes. */
  encode(e: EntryFields): Buffer {
    const lengths = this.#lengths;
    lengths.length = 0;
    let size = this.#fixed.length;
    let textLength = 0;
    if (e.textPayload !== undefined) {
      textLength = Buffer.byteLength(e.textPayload);
      size += fieldSize(textLength);
    }
    const idLength = Buffer.byteLength(e.insertId);
    size += fieldSize(idLength);
    let structLength = 0;
    if (e.payload !== undefined) {
      for (const name in e.payload) {
        const kl = Buffer.byteLength(name);
        const vl = Buffer.byteLength(e.payload[name]!);
        lengths.push(kl, vl);
        structLength += fieldSize(fieldSize(kl) + fieldSize(fieldSize(vl)));
      }
      size += fieldSize(structLength);
    }
    const timestampLength = 2 + varintSize(e.seconds) + varintSize(e.nanos);
    size += fieldSize(timestampLength);
    for (const name in e.labels) {
      const kl = Buffer.byteLength(name);
      const vl = Buffer.byteLength(e.labels[name]!);
      lengths.push(kl, vl);
      size += stringMapEntrySize(kl, vl);
    }

    const buf = Buffer.allocUnsafe(size);
    let pos = 0;
    let at = 0;
    if (e.textPayload !== undefined)
      pos = writeStringField(buf, pos, ENTRY.textPayload, e.textPayload, textLength);
    pos = writeStringField(buf, pos, ENTRY.insertId, e.insertId, idLength);
    if (e.payload !== undefined) {
      pos = writeFieldHead(buf, pos, ENTRY.jsonPayload, structLength);
      for (const name in e.payload) {
        const kl = lengths[at++]!;
        const vl = lengths[at++]!;
        pos = writeFieldHead(buf, pos, STRUCT.fields, fieldSize(kl) + fieldSize(fieldSize(vl)));
        pos = writeStringField(buf, pos, STRUCT.key, name, kl);
        pos = writeFieldHead(buf, pos, STRUCT.value, fieldSize(vl));
        pos = writeStringField(buf, pos, VALUE_STRING, e.payload[name]!, vl);
      }
    }
    pos = writeFieldHead(buf, pos, ENTRY.timestamp, timestampLength);
    buf[pos++] = TIMESTAMP.seconds;
    pos = writeVarint(buf, pos, e.seconds);
    buf[pos++] = TIMESTAMP.nanos;
    pos = writeVarint(buf, pos, e.nanos);
    pos += this.#fixed.copy(buf, pos);
    for (const name in e.labels) {
      const kl = lengths[at++]!;
      const vl = lengths[at++]!;
      pos = writeStringMapEntry(buf, pos, ENTRY.labels, name, kl, e.labels[name]!, vl);
    }
    if (pos !== size) throw new Error(`LogEntry encoded to ${pos} bytes, measured ${size}`);
    return buf;
  }
}

/** An ApiEntryOut (a marker, a tombstone) as LogEntry bytes. */
export function encodeApiEntry(entry: ApiEntryOut): Buffer {
  const payload: Record<string, string> | undefined = entry.jsonPayload ? {} : undefined;
  if (entry.jsonPayload && payload) {
    for (const [k, v] of Object.entries(entry.jsonPayload.fields)) payload[k] = v.stringValue;
  }
  return new LogEntryEncoder().encode({
    seconds: entry.timestamp.seconds,
    nanos: entry.timestamp.nanos,
    insertId: entry.insertId,
    labels: entry.labels,
    ...(entry.textPayload !== undefined ? { textPayload: entry.textPayload } : {}),
    ...(payload ? { payload } : {}),
  });
}

/** Bytes an entry adds to a WriteLogEntriesRequest (its field's tag and length too). */
export function entryFieldSize(entry: Buffer): number {
  return fieldSize(entry.length);
}

/**
 * The WriteLogEntriesRequest of one log, written once: the log name and resource ahead of the
 * entries, `partial_success` after them (where protobufjs writes it).
 */
export class WriteRequestEncoder {
  readonly #head: Buffer;
  readonly #tail: Buffer;

  constructor(
    logName: string,
    resource: { type: string; labels: Record<string, string> },
    partialSuccess: boolean,
  ) {
    const resourceLabels = encodeStringMap(RESOURCE.labels, resource.labels);
    const typeLength = Buffer.byteLength(resource.type);
    const resourceLength = fieldSize(typeLength) + resourceLabels.length;
    const nameLength = Buffer.byteLength(logName);
    this.#head = Buffer.allocUnsafe(fieldSize(nameLength) + fieldSize(resourceLength));
    let pos = writeStringField(this.#head, 0, REQUEST.logName, logName, nameLength);
    pos = writeFieldHead(this.#head, pos, REQUEST.resource, resourceLength);
    pos = writeStringField(this.#head, pos, RESOURCE.type, resource.type, typeLength);
    resourceLabels.copy(this.#head, pos);
    this.#tail = Buffer.from([REQUEST.partialSuccess, partialSuccess ? 1 : 0]);
  }

  /** The request carrying `entries` (LogEntry bytes), in one buffer. */
  request(entries: readonly Buffer[]): Buffer {
    let size = this.#head.length + this.#tail.length;
    for (const entry of entries) size += fieldSize(entry.length);
    const buf = Buffer.allocUnsafe(size);
    let pos = this.#head.copy(buf, 0);
    for (const entry of entries) {
      pos = writeFieldHead(buf, pos, REQUEST.entries, entry.length);
      pos += entry.copy(buf, pos);
    }
    this.#tail.copy(buf, pos);
    return buf;
  }
}
