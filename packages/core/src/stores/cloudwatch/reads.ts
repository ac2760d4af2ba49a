import type { OutputLogEvent } from '@aws-sdk/client-cloudwatch-logs';
import { type AttemptKey, attemptKey, sameAttempt } from '../../attempt-key.js';
import { IntegrityError, NotFoundError, OffsetOutOfRangeError } from '../../errors.js';
import type { LogChunk, LogStat } from '../../store.js';
import { RecordAssembler } from '../shared/log-records.js';
import { throwIfAborted } from '../shared/store-checks.js';
import { isNotFound } from './errors.js';
import {
  classifyStream,
  peekEvent,
  StreamDecoder,
  type StreamItem,
  type StreamLayout,
} from './events.js';
import {
  envelopesFrom,
  eventsFromHead,
  eventsFromTail,
  lastEvents,
  type StreamRef,
  streamLayout,
} from './pages.js';

// What a stream holds, read back: its items in order, its size, what a writer resumes from.

/** Events read from the end of an envelope stream to learn its tail. */
const TAIL_EVENTS = 25;
/**
 * No record of any configuration covers more than one event's 1 MiB, so the envelope holding
 * byte N starts at N - 1 MiB or later.
 */
const MAX_RECORD_BYTES = 1024 * 1024;

/** A decoded event with its layout and time. */
export type Stored = StreamItem & { layout: StreamLayout; timestamp: number };

/** What a new writer needs to know about a stream: one scan from the head. */
export async function resumeState(ref: StreamRef) {
  const state = {
    exists: true,
    layout: 'lines' as StreamLayout,
    header: undefined as unknown,
    data: false,
    complete: false,
    committed: 0,
    lastTimestamp: 0,
  };
  const assembler = new RecordAssembler(0);
  let contiguous = true;
  try {
    for await (const item of decodeAll(eventsFromHead(ref))) {
      state.layout = item.layout;
      state.lastTimestamp = Math.max(state.lastTimestamp, item.timestamp);
      if (item.kind === 'header') state.header ??= item.key;
      else if (item.kind === 'end') state.complete = true;
      else {
        state.data = true;
        if (!contiguous) continue;
        try {
          assembler.add(item.record);
        } catch (err) {
          // Too much after a gap: the log is committed up to the gap; a resumed writer
          // rewrites from there (the same bytes at the same offsets).
          if (!(err instanceof IntegrityError)) throw err;
          contiguous = false;
        }
      }
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    state.exists = false;
  }
  state.committed = assembler.next;
  return state;
}

/**
 * The log of the stream from `range.offset` (to `range.end`), each byte once, in order. A stream
 * in the envelope layout is read from 1 MiB before the offset (no record covers more) when the
 * offset is at least `filterFromOffset`; `stat` then says whether the attempt exists and how
 * far it goes. Throws NotFoundError (another attempt's stream, or none), OffsetOutOfRangeError,
 * IntegrityError (a finished log with a gap).
 */
export async function* readStream(
  ref: StreamRef,
  key: AttemptKey,
  range: {
    offset: number;
    end: number | undefined;
    filterFromOffset: number;
    stat: () => Promise<LogStat | undefined>;
  },
): AsyncGenerator<LogChunk> {
  const { group, stream, signal } = ref;
  const { offset } = range;
  const from = offset - MAX_RECORD_BYTES;
  const filtered =
    offset >= range.filterFromOffset && from > 0 && (await streamLayout(ref)) === 'envelope';
  const items = filtered
    ? decodeAll(envelopesFrom(ref, from), 'envelope')
    : decodeAll(eventsFromHead(ref));
  const assembler = new RecordAssembler(offset);
  let stop = range.end ?? Number.POSITIVE_INFINITY;
  let size: number | undefined;
  let highest = 0;
  for await (const item of items) {
    throwIfAborted(signal);
    if (item.kind === 'header') {
      if (!namesAttempt(item.key, key)) {
        throw new NotFoundError(
          `log stream ${stream} in ${group} holds another attempt's log (${JSON.stringify(item.key)}), whose name differs only in ":" and "_"`,
        );
      }
      continue;
    }
    if (item.kind === 'end') {
      size = item.size;
      if (offset > size) throw new OffsetOutOfRangeError(offset, size);
      stop = Math.min(stop, size);
    } else {
      const r = item.record;
      highest = Math.max(highest, r.offset + r.length);
      // Records past `stop` are not needed; keeping them out spares the assembler's buffer.
      if (r.offset >= stop) continue;
      for (const chunk of assembler.add(r)) {
        const room = stop - chunk.offset;
        if (room <= 0) break;
        yield room < chunk.bytes.length
          ? { offset: chunk.offset, bytes: chunk.bytes.subarray(0, room) }
          : chunk;
      }
    }
    if (assembler.next >= stop) return;
  }
  if (size !== undefined) {
    if (assembler.next < stop) {
      throw new IntegrityError(
        `log stream ${stream} in ${group} is complete at ${size} bytes but its records stop at byte ${assembler.next}`,
      );
    }
    return;
  }
  if (filtered) {
    // The filter sent only events near and after `offset`; the tail says whether the
    // attempt exists and how far it goes.
    if (assembler.next === offset) {
      const stat = await range.stat();
      if (!stat) throw new NotFoundError(`no log stream ${stream} in ${group}`);
      if (offset > stat.size) throw new OffsetOutOfRangeError(offset, stat.size);
    }
    return;
  }
  // A running log (an empty stream is one whose writer has flushed nothing yet): it ends where its records end (at the first gap, should there be one).
  if (assembler.next === offset && offset > highest) {
    throw new OffsetOutOfRangeError(offset, highest);
  }
}

/** The items of a stream's events, in order; the layout comes from the first event. */
export async function* decodeAll(
  events: AsyncIterable<OutputLogEvent>,
  known?: StreamLayout,
): AsyncGenerator<Stored> {
  let decoder: StreamDecoder | undefined;
  for await (const e of events) {
    decoder ??= new StreamDecoder(known ?? classifyStream(e.message));
    const item = decoder.decode(e.message);
    if (item) yield { ...item, layout: decoder.layout, timestamp: e.timestamp ?? 0 };
  }
}

/**
 * stat() of a stream in today's layout (or Airflow's): back from the newest event, counting
 * the plain lines passed, to the end record (complete), the nearest escape (whose offset anchors
 * the count) or the head.
 */
export async function countBack(ref: StreamRef, layout: StreamLayout): Promise<LogStat> {
  let after = 0;
  let modifiedAt: Date | undefined;
  const stat = (size: number, extra: Partial<LogStat> = {}): LogStat => ({
    size,
    complete: false,
    ...extra,
    ...(modifiedAt ? { modifiedAt } : {}),
  });
  for await (const e of eventsFromTail(ref)) {
    if (modifiedAt === undefined && e.ingestionTime) modifiedAt = new Date(e.ingestionTime);
    const item = peekEvent(layout, e.message);
    if (!item || item.kind === 'header') continue;
    if (item.kind === 'plain') after += item.length;
    else if (item.kind === 'end') {
      return stat(item.size, { complete: true, sha256: item.sha256 });
    } else return stat(item.record.offset + item.record.length + after);
  }
  return stat(after);
}

/** stat() of an envelope stream: its last events, each carrying its offset. */
export async function envelopeStat(ref: StreamRef): Promise<LogStat | undefined> {
  const events = await lastEvents(ref, TAIL_EVENTS);
  if (!events) return undefined;
  let highest = 0;
  let ingestionTime = 0;
  let end: { size: number; sha256: string } | undefined;
  for (const e of events) {
    const item = peekEvent('envelope', e.message);
    if (!item) continue;
    ingestionTime = Math.max(ingestionTime, e.ingestionTime ?? 0);
    if (item.kind === 'end') end = { size: item.size, sha256: item.sha256 };
    else if (item.kind === 'data') {
      highest = Math.max(highest, item.record.offset + item.record.length);
    }
  }
  const modifiedAt = ingestionTime ? { modifiedAt: new Date(ingestionTime) } : {};
  if (end) return { size: end.size, complete: true, sha256: end.sha256, ...modifiedAt };
  return { size: highest, complete: false, ...modifiedAt };
}

/** The AttemptKey a header event names, if it is a valid one. */
export function keyOf(raw: unknown): AttemptKey | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const k = raw as Record<string, unknown>;
  try {
    return attemptKey({
      dagId: k.dagId,
      runId: k.runId,
      taskId: k.taskId,
      mapIndex: k.mapIndex,
      tryNumber: k.tryNumber,
    });
  } catch {
    return undefined;
  }
}

export function namesAttempt(header: unknown, key: AttemptKey): boolean {
  const named = keyOf(header);
  return named !== undefined && sameAttempt(named, key);
}
