/**
 * Log groups and streams as the emulator keeps them: each stream's events sorted by
 * (timestamp, ingestion order), and the binary searches and keys its reads page by.
 */
import { partitionPoint } from '../shared/binary-search.js';

export interface StoredEvent {
  readonly timestamp: number;
  readonly message: string;
  readonly ingestionTime: number;
  /** Ingestion order within the stream: ties of `timestamp` keep it. */
  readonly seq: number;
  readonly bytes: number;
}

/** A log stream and its events. */
export interface LogStreamState {
  readonly name: string;
  readonly creationTime: number;
  /** Sorted by (timestamp, seq). */
  readonly events: StoredEvent[];
  nextSeq: number;
  lastIngestionTime?: number;
}

/** A log group and its streams by name. */
export interface LogGroupState {
  readonly name: string;
  readonly creationTime: number;
  readonly streams: Map<string, LogStreamState>;
}

export function lastEventTime(s: LogStreamState): number | undefined {
  return s.events.at(-1)?.timestamp;
}

export function sequenceToken(s: LogStreamState): string {
  return String(s.nextSeq).padStart(56, '0');
}

/** Stable: an event goes after every stored event with the same timestamp. */
export function insertSorted(stream: LogStreamState, event: StoredEvent): void {
  const events = stream.events;
  if (events.length === 0 || events.at(-1)!.timestamp <= event.timestamp) {
    events.push(event);
    return;
  }
  events.splice(upperBound(events, [event.timestamp, Number.MAX_SAFE_INTEGER]), 0, event);
}

/** Index of the first event whose (timestamp, seq) is greater than `key`. */
export function upperBound(events: readonly StoredEvent[], key: [number, number]): number {
  return partitionPoint(
    events,
    (e) => e.timestamp < key[0] || (e.timestamp === key[0] && e.seq <= key[1]),
  );
}

/** Index of the first event whose (timestamp, seq) is not less than `key`. */
export function lowerBound(events: readonly StoredEvent[], key: [number, number]): number {
  return partitionPoint(
    events,
    (e) => e.timestamp < key[0] || (e.timestamp === key[0] && e.seq < key[1]),
  );
}

export function compareKeys(a: [number, string, number], b: [number, string, number]): number {
  return a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0) || a[2] - b[2];
}
