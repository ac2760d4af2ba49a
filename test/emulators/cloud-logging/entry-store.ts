/**
 * The emulated Cloud Logging service, independent of the wire protocol: what WriteLogEntries,
 * ListLogEntries and DeleteLog do to an in-memory set of entries. The gRPC and REST front ends
 * translate their messages to and from `EntryInput` / `StoredEntry`.
 *
 * Reference: https://cloud.google.com/logging/docs/reference/v2/rpc/google.logging.v2 and
 * https://cloud.google.com/logging/quotas (entry 256 KiB, entries.write 10 MB,
 * timestamps up to 1 day in the future).
 */
import { createHash, randomBytes } from 'node:crypto';
import { partitionPoint } from '../shared/binary-search.js';
import {
  type CompiledFilter,
  compileFilter,
  type FieldValue,
  FilterSyntaxError,
} from './filter.js';

/** gRPC status codes the service answers with. */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

export class LoggingApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface MonitoredResource {
  type: string;
  labels: Record<string, string>;
}

/** An entry as a front end hands it over (already decoded; timestamp as epoch nanoseconds). */
export interface EntryInput {
  logName?: string;
  resource?: Partial<MonitoredResource>;
  timestamp?: bigint;
  insertId?: string;
  labels?: Record<string, string>;
  severity?: number;
  textPayload?: string;
  jsonPayload?: Record<string, unknown>;
}

export interface StoredEntry {
  logName: string;
  resource: MonitoredResource;
  /** Epoch nanoseconds. */
  timestamp: bigint;
  receiveTimestamp: bigint;
  insertId: string;
  labels: Record<string, string>;
  severity: number;
  textPayload?: string;
  jsonPayload?: Record<string, unknown>;
  /** Arrival order, the last sort key. */
  seq: number;
}

export interface WriteRequest {
  logName?: string;
  resource?: Partial<MonitoredResource>;
  labels?: Record<string, string>;
  entries: EntryInput[];
  partialSuccess?: boolean;
  dryRun?: boolean;
  /** Size of the request as received (protobuf or JSON bytes). */
  requestBytes: number;
}

export interface ListRequest {
  resourceNames: string[];
  filter?: string;
  orderBy?: string;
  pageSize?: number;
  pageToken?: string;
}

export interface ListResponse {
  entries: StoredEntry[];
  nextPageToken: string;
}

export const MAX_ENTRY_BYTES = 256 * 1024;
/** "Request payload size exceeds the limit: 10485760 bytes." */
export const MAX_REQUEST_BYTES = 10 * 1024 * 1024;
const MAX_FUTURE_NS = 24n * 3600n * 1_000_000_000n;
const DEFAULT_PAGE_SIZE = 50;
const MAX_PAGE_SIZE = 1000;
const LOG_NAME =
  /^(projects|organizations|folders|billingAccounts)\/[^/]+\/logs\/[A-Za-z0-9_\-./%]{1,511}$/;

/** Google's way of printing sizes in its limit errors: `555.6K`, `6.23M`. */
function formatSize(bytes: number): string {
  return bytes < 1024 * 1024
    ? `${(bytes / 1024).toFixed(1)}K`
    : `${(bytes / (1024 * 1024)).toFixed(2)}M`;
}

/** RFC 3339 with nanoseconds, as the REST API prints timestamps. */
export function formatTimestamp(nanos: bigint): string {
  const ms = nanos / 1_000_000n;
  const iso = new Date(Number(ms)).toISOString(); // ...ss.mmmZ
  const frac = (nanos % 1_000_000_000n).toString().padStart(9, '0');
  return `${iso.slice(0, 19)}.${frac}Z`;
}

/**
 * How big an entry counts against the 256 KiB limit: its proto3 JSON form in UTF-8. That is at
 * least as big as the protobuf encoding the service measures (escaping only grows JSON), so the
 * emulator is never more lenient than the service.
 */
export function entryBytes(entry: Omit<StoredEntry, 'seq' | 'receiveTimestamp'>): number {
  return Buffer.byteLength(
    JSON.stringify({
      logName: entry.logName,
      resource: entry.resource,
      timestamp: formatTimestamp(entry.timestamp),
      insertId: entry.insertId,
      labels: entry.labels,
      severity: entry.severity,
      textPayload: entry.textPayload,
      jsonPayload: entry.jsonPayload,
    }),
  );
}

function sortKey(a: StoredEntry, b: StoredEntry): number {
  if (a.timestamp !== b.timestamp) return a.timestamp < b.timestamp ? -1 : 1;
  if (a.insertId !== b.insertId) return a.insertId < b.insertId ? -1 : 1;
  return a.seq - b.seq;
}

/** The fields of an entry a filter names without a path below them. */
const SCALAR_FIELDS = [
  'logName',
  'insertId',
  'timestamp',
  'receiveTimestamp',
  'severity',
  'textPayload',
] as const satisfies readonly (keyof StoredEntry)[];

/** Whether a filter's field `name` is one of SCALAR_FIELDS. */
function isScalarField(name: string | undefined): name is (typeof SCALAR_FIELDS)[number] {
  return (SCALAR_FIELDS as readonly (string | undefined)[]).includes(name);
}

function fieldReader(e: StoredEntry): (path: readonly string[]) => FieldValue {
  return (path) => {
    const [head, ...rest] = path;
    if (isScalarField(head)) return rest.length ? undefined : e[head];
    switch (head) {
      case 'labels':
        return rest.length === 1 ? e.labels[rest[0]!] : undefined;
      case 'resource':
        if (rest.length === 1 && rest[0] === 'type') return e.resource.type;
        if (rest.length === 2 && rest[0] === 'labels') return e.resource.labels[rest[1]!];
        return undefined;
      case 'jsonPayload': {
        let v: unknown = e.jsonPayload;
        for (const p of rest) {
          if (v === null || typeof v !== 'object') return undefined;
          v = (v as Record<string, unknown>)[p];
        }
        if (typeof v === 'string') return v;
        if (typeof v === 'number' || typeof v === 'boolean') return String(v);
        return undefined;
      }
      default:
        return undefined;
    }
  };
}

interface PageCursor {
  /** sha256 of the query the token belongs to. */
  q: string;
  t: string;
  id: string;
  s: number;
}

export class EntryStore {
  /** Sorted by (timestamp, insertId, seq): the service's order. */
  #entries: StoredEntry[] = [];
  /** logName \0 insertId \0 timestamp: the de-duplication key. */
  readonly #ids = new Set<string>();
  #seq = 0;
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Every stored entry in the service's order (copies are cheap to take for tests). */
  all(logName?: string): StoredEntry[] {
    return logName === undefined
      ? [...this.#entries]
      : this.#entries.filter((e) => e.logName === logName);
  }

  clear(): void {
    this.#entries = [];
    this.#ids.clear();
  }

  /**
   * WriteLogEntries. Validates every entry; with `partialSuccess` the valid ones are written and
   * the call still fails with the first entry's error (the service reports per-entry errors in
   * the status details), without it nothing is written. Entries with the logName, insertId and
   * timestamp of a stored one are dropped as duplicates.
   */
  write(req: WriteRequest): void {
    if (req.requestBytes > MAX_REQUEST_BYTES) {
      throw new LoggingApiError(
        Code.INVALID_ARGUMENT,
        `Request payload size exceeds the limit: ${MAX_REQUEST_BYTES} bytes.`,
      );
    }
    if (!Array.isArray(req.entries) || req.entries.length === 0) {
      throw new LoggingApiError(Code.INVALID_ARGUMENT, 'At least one log entry is required.');
    }
    const nowNs = BigInt(this.#now()) * 1_000_000n;
    const valid: StoredEntry[] = [];
    let firstError: string | undefined;
    req.entries.forEach((input, index) => {
      try {
        valid.push(this.#validate(input, req, nowNs));
      } catch (err) {
        if (!(err instanceof LoggingApiError)) throw err;
        firstError ??= `${err.message} (entry ${index})`;
      }
    });
    if (firstError !== undefined && !req.partialSuccess) {
      throw new LoggingApiError(Code.INVALID_ARGUMENT, firstError);
    }
    if (!req.dryRun) for (const e of valid) this.#insert(e);
    if (firstError !== undefined) throw new LoggingApiError(Code.INVALID_ARGUMENT, firstError);
  }

  #validate(input: EntryInput, req: WriteRequest, nowNs: bigint): StoredEntry {
    const logName = input.logName || req.logName;
    if (!logName) {
      throw new LoggingApiError(Code.INVALID_ARGUMENT, 'Log entry has no logName.');
    }
    if (!LOG_NAME.test(logName)) {
      throw new LoggingApiError(Code.INVALID_ARGUMENT, `Invalid log name: "${logName}".`);
    }
    const resource = input.resource?.type ? input.resource : req.resource;
    if (!resource?.type) {
      throw new LoggingApiError(Code.INVALID_ARGUMENT, 'Log entry has no monitored resource type.');
    }
    const timestamp = input.timestamp ?? nowNs;
    if (timestamp > nowNs + MAX_FUTURE_NS) {
      throw new LoggingApiError(
        Code.INVALID_ARGUMENT,
        `Log entry timestamp ${formatTimestamp(timestamp)} is more than 1 day in the future.`,
      );
    }
    const labels = { ...(req.labels ?? {}), ...(input.labels ?? {}) };
    if (Object.keys(labels).length > 64) {
      throw new LoggingApiError(Code.INVALID_ARGUMENT, 'Log entry has more than 64 labels.');
    }
    const entry: StoredEntry = {
      logName,
      resource: { type: resource.type, labels: { ...(resource.labels ?? {}) } },
      timestamp,
      receiveTimestamp: nowNs,
      insertId: input.insertId || randomBytes(9).toString('base64url'),
      labels,
      severity: input.severity ?? 0,
      ...(input.textPayload !== undefined ? { textPayload: input.textPayload } : {}),
      ...(input.jsonPayload !== undefined ? { jsonPayload: input.jsonPayload } : {}),
      seq: 0,
    };
    const size = entryBytes(entry);
    if (size > MAX_ENTRY_BYTES) {
      throw new LoggingApiError(
        Code.INVALID_ARGUMENT,
        `Log entry with size ${formatSize(size)} exceeds maximum size of ${formatSize(MAX_ENTRY_BYTES)}`,
      );
    }
    return entry;
  }

  #insert(entry: StoredEntry): void {
    const id = `${entry.logName}\0${entry.insertId}\0${entry.timestamp}`;
    if (this.#ids.has(id)) return;
    this.#ids.add(id);
    entry.seq = ++this.#seq;
    const list = this.#entries;
    // Mostly appends: writers send increasing timestamps.
    let at = list.length;
    if (at > 0 && sortKey(list[at - 1]!, entry) > 0) {
      at = partitionPoint(list, (e) => sortKey(e, entry) <= 0);
    }
    list.splice(at, 0, entry);
  }

  /** ListLogEntries: filtered, ordered by timestamp (then insertId), paged by opaque tokens. */
  list(req: ListRequest): ListResponse {
    const projects = (req.resourceNames ?? []).map((r) => {
      const m = /^projects\/([^/]+)$/.exec(r);
      if (!m) {
        throw new LoggingApiError(Code.INVALID_ARGUMENT, `Invalid resource name: "${r}".`);
      }
      return `projects/${m[1]}/logs/`;
    });
    if (projects.length === 0) {
      throw new LoggingApiError(Code.INVALID_ARGUMENT, 'resourceNames must not be empty.');
    }
    const pageSize = req.pageSize || DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(pageSize) || pageSize < 0 || pageSize > MAX_PAGE_SIZE) {
      throw new LoggingApiError(
        Code.INVALID_ARGUMENT,
        `Invalid page size ${req.pageSize}: it must be between 0 and ${MAX_PAGE_SIZE}.`,
      );
    }
    const order = (req.orderBy || 'timestamp asc').trim().toLowerCase().replace(/\s+/g, ' ');
    if (order !== 'timestamp asc' && order !== 'timestamp desc' && order !== 'timestamp') {
      throw new LoggingApiError(
        Code.INVALID_ARGUMENT,
        `Invalid orderBy "${req.orderBy}": only "timestamp asc" and "timestamp desc" are supported.`,
      );
    }
    const desc = order === 'timestamp desc';
    let filter: CompiledFilter;
    try {
      filter = compileFilter(req.filter ?? '');
    } catch (err) {
      if (err instanceof FilterSyntaxError) {
        throw new LoggingApiError(Code.INVALID_ARGUMENT, `Unparseable filter: ${err.message}`);
      }
      throw err;
    }
    const query = createHash('sha256')
      .update(JSON.stringify([projects, req.filter ?? '', order]))
      .digest('hex')
      .slice(0, 16);
    const list = this.#entries;
    let start = desc ? list.length - 1 : 0;
    if (req.pageToken) {
      const cursor = decodeToken(req.pageToken);
      if (!cursor || cursor.q !== query) {
        throw new LoggingApiError(Code.INVALID_ARGUMENT, 'Invalid page token.');
      }
      const probe = {
        timestamp: BigInt(cursor.t),
        insertId: cursor.id,
        seq: cursor.s,
      } as StoredEntry;
      // First position strictly after (asc) or before (desc) the cursor.
      const lo = partitionPoint(list, (e) => sortKey(e, probe) <= 0);
      start = desc ? lo - 1 - (lo > 0 && sortKey(list[lo - 1]!, probe) === 0 ? 1 : 0) : lo;
    }
    const out: StoredEntry[] = [];
    let i = start;
    let more = false;
    for (; desc ? i >= 0 : i < list.length; i += desc ? -1 : 1) {
      const e = list[i]!;
      if (!projects.some((p) => e.logName.startsWith(p))) continue;
      if (!filter.matches(fieldReader(e))) continue;
      if (out.length === pageSize) {
        more = true;
        break;
      }
      out.push(e);
    }
    const last = out[out.length - 1];
    const nextPageToken =
      more && last
        ? Buffer.from(
            JSON.stringify({
              q: query,
              t: last.timestamp.toString(),
              id: last.insertId,
              s: last.seq,
            } satisfies PageCursor),
          ).toString('base64url')
        : '';
    return { entries: out, nextPageToken };
  }

  /** DeleteLog: removes every entry of the log; NOT_FOUND when it has none. */
  deleteLog(logName: string): void {
    if (!logName || !LOG_NAME.test(logName)) {
      throw new LoggingApiError(Code.INVALID_ARGUMENT, `Invalid log name: "${logName}".`);
    }
    const before = this.#entries.length;
    this.#entries = this.#entries.filter((e) => e.logName !== logName);
    if (this.#entries.length === before) {
      throw new LoggingApiError(Code.NOT_FOUND, `Log ${logName} does not exist.`);
    }
    for (const id of [...this.#ids]) if (id.startsWith(`${logName}\0`)) this.#ids.delete(id);
  }
}

function decodeToken(token: string): PageCursor | undefined {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as PageCursor;
    if (typeof v.q !== 'string' || typeof v.t !== 'string' || typeof v.id !== 'string') {
      return undefined;
    }
    BigInt(v.t);
    return v;
  } catch {
    return undefined;
  }
}
