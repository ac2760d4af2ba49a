import {
  ConflictError,
  IntegrityError,
  NotFoundError,
  OffsetOutOfRangeError,
} from '../../errors.js';
import type { LogChunk, LogStat } from '../../store.js';
import { RecordAssembler } from '../shared/log-records.js';
import type { AttemptDocuments } from './attempt-documents.js';
import { heldBytes } from './documents.js';

/**
 * The log from `offset` (to `end`): one query for the document holding `offset`, then pages of
 * `search_after` on `offset` (never deep from/size paging). `stat` is the store's, for a read
 * of nothing that must still tell an offset past the end.
 */
export async function* readLog(
  docs: AttemptDocuments,
  offset: number,
  end: number | undefined,
  stat: () => Promise<LogStat | undefined>,
): AsyncGenerator<LogChunk> {
  const { logId, index } = docs;
  if (end === offset) {
    // Nothing to return, but an offset past the end is still an error.
    const found = await stat();
    if (!found) throw new NotFoundError(`no log ${logId} in index ${index}`);
    if (offset > found.size) throw new OffsetOutOfRangeError(offset, found.size);
    return;
  }
  const stop = end ?? Number.POSITIVE_INFINITY;
  let from = 0;
  let exists = false;
  if (offset > 0 && docs.fields.exactLogId(logId)) {
    const head = await docs.last(offset + 1);
    if (head) {
      exists = true;
      if (head.doc.kind === 'record') from = head.doc.record.offset;
      else if (head.doc.kind === 'end') from = head.doc.size;
    }
  }
  const assembler = new RecordAssembler(offset);
  let runEnd = from;
  let complete: { size: number } | undefined;
  for await (const item of docs.items(from)) {
    exists = true;
    if (item.kind === 'start') continue;
    if (item.kind === 'end') {
      complete = item;
      break;
    }
    const record = item.record;
    if (record.offset > runEnd) {
      // A running log ends at its first gap; a finished one must not have any.
      if (await docs.isComplete()) {
        throw new IntegrityError(
          `log ${logId} in index ${index} is complete but bytes ${runEnd}-${record.offset} are missing`,
        );
      }
      break;
    }
    runEnd = Math.max(runEnd, record.offset + record.length);
    for (const chunk of assembler.add(record)) {
      const take = Math.min(chunk.bytes.length, stop - chunk.offset);
      if (take > 0)
        yield take === chunk.bytes.length
          ? chunk
          : { offset: chunk.offset, bytes: chunk.bytes.subarray(0, take) };
      if (chunk.offset + take >= stop) return;
    }
  }
  if (!exists) throw new NotFoundError(`no log ${logId} in index ${index}`);
  const size = complete?.size ?? runEnd;
  if (offset > size) throw new OffsetOutOfRangeError(offset, size);
  if (complete && assembler.next < Math.min(stop, size)) {
    throw new IntegrityError(
      `log ${logId} in index ${index} ends at byte ${assembler.next} but its end record says ${size}`,
    );
  }
}

/**
 * Finished → size and sha256 of the end record. Running → the end of the document with the
 * highest offset (one query; a gap a crashed writer left before it is not noticed here, a read
 * stops at it). A log Airflow wrote itself is read through to add up its bytes. Undefined when
 * the index holds nothing for the attempt.
 */
export async function statLog(docs: AttemptDocuments): Promise<LogStat | undefined> {
  if (docs.fields.exactLogId(docs.logId)) {
    const last = await docs.last();
    if (!last) return undefined;
    const { doc, timestamp: modifiedAt } = last;
    const when = modifiedAt ? { modifiedAt: new Date(modifiedAt) } : {};
    if (doc.kind === 'end') {
      return {
        size: doc.size,
        complete: true,
        ...(doc.sha256 ? { sha256: doc.sha256 } : {}),
        ...when,
      };
    }
    if (doc.kind === 'start') return { size: 0, complete: false, ...when };
    if (doc.kind === 'record') {
      return { size: doc.record.offset + doc.record.length, complete: false, ...when };
    }
  }
  // Airflow's own documents (or a log_id that cannot be matched exactly): walk the log.
  let size = 0;
  let exists = false;
  let modified = 0;
  for await (const item of docs.items(0)) {
    exists = true;
    modified = Math.max(modified, item.timestamp ?? 0);
    if (item.kind === 'end') {
      return {
        size: item.size,
        complete: true,
        ...(item.sha256 ? { sha256: item.sha256 } : {}),
        ...(modified ? { modifiedAt: new Date(modified) } : {}),
      };
    }
    if (item.kind === 'record') {
      if (item.record.offset > size) break;
      size = Math.max(size, item.record.offset + item.record.length);
    }
  }
  if (!exists) return undefined;
  return { size, complete: false, ...(modified ? { modifiedAt: new Date(modified) } : {}) };
}

/** Where a new writer of the attempt starts. */
export interface ResumePoint {
  /** Bytes stored without a gap from the log's start. */
  committed: number;
  /** The latest `@timestamp` among them: the writer's documents are never earlier. */
  lastTimestamp: number;
  /** The start marker is there. */
  started: boolean;
  /** Documents after a gap, left over from a crashed writer: to be swept. */
  stale: boolean;
  /** The unshown end of the last line, for what the new writer's first document must show. */
  held: Buffer;
}

/**
 * Reads where the attempt stands. Throws ConflictError when the log is complete or was written
 * by Airflow itself.
 */
export async function resumePoint(docs: AttemptDocuments): Promise<ResumePoint> {
  const { logId, index } = docs;
  const assembler = new RecordAssembler(0);
  let committed = 0;
  let lastTimestamp = 0;
  let started = false;
  let stale = false;
  // The end of the last line, for what the new writer's first document must show.
  let lastBytes = Buffer.alloc(0);
  let lastEndedLine = true;
  for await (const item of docs.items(0)) {
    if (item.kind === 'start') {
      started = true;
      continue;
    }
    if (item.kind === 'end') {
      throw new ConflictError(`log ${logId} in index ${index} is already complete`);
    }
    if (item.foreign) {
      throw new ConflictError(
        `log ${logId} in index ${index} was written by Airflow itself; tasklog does not append to it`,
      );
    }
    if (item.record.offset > committed) {
      stale = true; // a gap: everything from here on is left over from a crashed writer
      break;
    }
    for (const chunk of assembler.add(item.record)) {
      lastBytes = Buffer.concat([lastBytes, chunk.bytes.subarray(-4)]).subarray(-4);
      lastEndedLine = lastBytes.at(-1) === 0x0a;
    }
    committed = assembler.next;
    lastTimestamp = Math.max(lastTimestamp, item.timestamp ?? 0);
  }
  return {
    committed,
    lastTimestamp,
    started,
    stale,
    held: heldBytes(lastBytes, lastEndedLine),
  };
}
