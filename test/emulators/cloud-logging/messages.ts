/**
 * Log entries as the two transports carry them, to and from the entry store's own form: gRPC
 * (proto3 JSON via proto-loader: Struct payloads, `{seconds, nanos}` timestamps) and REST
 * (plain JSON, RFC 3339 timestamps, severity as a name or a number).
 */
import {
  Code,
  type EntryInput,
  formatTimestamp,
  LoggingApiError,
  type StoredEntry,
} from './entry-store.js';
import { parseRfc3339, severityNumber } from './filter.js';

type StructValue = {
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: { fields?: Record<string, StructValue> };
  listValue?: { values?: StructValue[] };
  kind?: string;
};

function fromStruct(
  s: { fields?: Record<string, StructValue> } | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s?.fields ?? {})) out[k] = fromValue(v);
  return out;
}

function fromValue(v: StructValue): unknown {
  const kind = v.kind ?? Object.keys(v).find((k) => k !== 'kind');
  switch (kind) {
    case 'numberValue':
      return v.numberValue;
    case 'stringValue':
      return v.stringValue;
    case 'boolValue':
      return v.boolValue;
    case 'structValue':
      return fromStruct(v.structValue);
    case 'listValue':
      return (v.listValue?.values ?? []).map(fromValue);
    default:
      return null;
  }
}

function toValue(v: unknown): StructValue {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v as Record<string, unknown>) };
}

function toStruct(o: Record<string, unknown>): { fields: Record<string, StructValue> } {
  const fields: Record<string, StructValue> = {};
  for (const [k, v] of Object.entries(o)) fields[k] = toValue(v);
  return { fields };
}

interface GrpcTimestamp {
  seconds?: string | number;
  nanos?: number;
}

function fromGrpcTimestamp(t: GrpcTimestamp | null | undefined): bigint | undefined {
  if (!t) return undefined;
  return BigInt(t.seconds ?? 0) * 1_000_000_000n + BigInt(t.nanos ?? 0);
}

function toGrpcTimestamp(nanos: bigint): GrpcTimestamp {
  const seconds = nanos / 1_000_000_000n;
  return { seconds: seconds.toString(), nanos: Number(nanos - seconds * 1_000_000_000n) };
}

/** The fields of a LogEntry that the gRPC and the REST API send alike. */
interface WireEntry {
  logName?: string;
  resource?: { type?: string; labels?: Record<string, string> };
  insertId?: string;
  labels?: Record<string, string>;
  textPayload?: string;
}

export interface GrpcEntry extends WireEntry {
  timestamp?: GrpcTimestamp;
  severity?: number;
  jsonPayload?: { fields?: Record<string, StructValue> };
  payload?: string;
}

export function fromGrpcEntry(e: GrpcEntry): EntryInput {
  return {
    logName: e.logName,
    resource: e.resource ? { type: e.resource.type, labels: e.resource.labels ?? {} } : undefined,
    timestamp: fromGrpcTimestamp(e.timestamp),
    insertId: e.insertId,
    labels: e.labels,
    severity: e.severity,
    textPayload: e.textPayload,
    jsonPayload: e.jsonPayload ? fromStruct(e.jsonPayload) : undefined,
  };
}

export function toGrpcEntry(e: StoredEntry): GrpcEntry {
  return {
    logName: e.logName,
    resource: e.resource,
    timestamp: toGrpcTimestamp(e.timestamp),
    receiveTimestamp: toGrpcTimestamp(e.receiveTimestamp),
    insertId: e.insertId,
    labels: e.labels,
    severity: e.severity,
    ...(e.textPayload !== undefined ? { textPayload: e.textPayload } : {}),
    ...(e.jsonPayload !== undefined ? { jsonPayload: toStruct(e.jsonPayload) } : {}),
  } as GrpcEntry;
}

export interface RestEntry extends WireEntry {
  timestamp?: string;
  severity?: number | string;
  jsonPayload?: Record<string, unknown>;
}

export function fromRestEntry(e: RestEntry): EntryInput {
  let timestamp: bigint | undefined;
  if (e.timestamp !== undefined) {
    timestamp = parseRfc3339(e.timestamp);
    if (timestamp === undefined) {
      throw new LoggingApiError(Code.INVALID_ARGUMENT, `Invalid timestamp "${e.timestamp}".`);
    }
  }
  return {
    logName: e.logName,
    resource: e.resource ? { type: e.resource.type, labels: e.resource.labels ?? {} } : undefined,
    timestamp,
    insertId: e.insertId,
    labels: e.labels,
    severity: e.severity === undefined ? undefined : severityNumber(e.severity),
    textPayload: e.textPayload,
    jsonPayload: e.jsonPayload,
  };
}

export function toRestEntry(e: StoredEntry): Record<string, unknown> {
  return {
    logName: e.logName,
    resource: e.resource,
    timestamp: formatTimestamp(e.timestamp),
    receiveTimestamp: formatTimestamp(e.receiveTimestamp),
    insertId: e.insertId,
    labels: e.labels,
    severity: e.severity,
    ...(e.textPayload !== undefined ? { textPayload: e.textPayload } : {}),
    ...(e.jsonPayload !== undefined ? { jsonPayload: e.jsonPayload } : {}),
  };
}
