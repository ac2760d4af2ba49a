import { type AttemptKey, attemptKey, sameAttempt } from '../../attempt-key.js';
import { InvalidInputError } from '../../errors.js';
import type { AttemptFilter, PathTemplate } from '../../path-template.js';

/**
 * Stream names and the attempts they name. Airflow's CloudwatchTaskHandler names an attempt's
 * stream by its relative path with every `:` replaced by `_` (stream names cannot hold `:`), so
 * a name cannot be parsed back exactly: `run_id=a:b` and `run_id=a_b` share one stream. tasklog
 * recovers the attempt from the name wherever Airflow's own run ids make that unambiguous, and
 * writes a header event (see events.ts) only for the attempts it could not recover.
 */

const MAX_STREAM_NAME = 512;

/** Airflow's CloudwatchTaskHandler: the relative path with every `:` as `_`. */
export function sanitize(relativePath: string): string {
  return relativePath.replaceAll(':', '_');
}

/** The attempt's stream name. Throws InvalidInputError for a name CloudWatch refuses. */
export function streamNameOf(template: PathTemplate, key: AttemptKey): string {
  const name = sanitize(template.render(attemptKey(key)));
  if (name.length > MAX_STREAM_NAME || name.includes('*')) {
    throw new InvalidInputError(
      `CloudWatch log stream names are at most ${MAX_STREAM_NAME} characters without "*", got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

/**
 * The ISO 8601 date-time in Airflow's run ids (`scheduled__2024-01-01T00:00:00+00:00`,
 * `manual__2024-05-01T10:00:00.123456+00:00`, Airflow 3's `manual__…+00:00_k3J2aB9x`) after
 * `:` became `_`. In that shape every `_` between the digits was a `:`: nothing else puts one
 * there.
 */
const SANITIZED_ISO_TIME =
  /(\d{4}-\d{2}-\d{2}T\d{2})_(\d{2})_(\d{2}(?:\.\d{1,9})?)(?:([+-]\d{2})_(\d{2}))?/g;

/** A sanitized run id with the colons of an Airflow date-time put back. */
export function restoreRunId(sanitizedRunId: string): string {
  return sanitizedRunId.replace(
    SANITIZED_ISO_TIME,
    (_m, hour: string, minute: string, second: string, zoneHour?: string, zoneMinute?: string) =>
      `${hour}:${minute}:${second}${zoneHour === undefined ? '' : `${zoneHour}:${zoneMinute}`}`,
  );
}

/**
 * The attempt a stream name stands for when its stream says nothing else: the name parsed with
 * the path template, the run id's date-time colons restored. Undefined when the name is not an
 * attempt's.
 */
export function impliedKey(template: PathTemplate, stream: string): AttemptKey | undefined {
  const parsed = template.tryParse(stream);
  if (!parsed) return undefined;
  try {
    const key = attemptKey({ ...parsed, runId: restoreRunId(parsed.runId) });
    // dag and task ids cannot hold ":" in Airflow; a template that puts the run id where the
    // restored colons would change the name is not one we can read back.
    return streamNameOf(template, key) === stream ? key : parsed;
  } catch {
    return parsed;
  }
}

/**
 * Whether the attempt's stream must start with a header naming it: only when the name alone
 * would be read back as another attempt (a run id whose ":" are not those of a date-time, or
 * whose "_" would be taken for ":").
 */
export function needsHeader(template: PathTemplate, key: AttemptKey): boolean {
  const implied = impliedKey(template, streamNameOf(template, key));
  return implied === undefined || !sameAttempt(implied, key);
}

/**
 * The attempt to list for a stream without a header. A caller who asked for one run id gets
 * that spelling when it names this stream: the stream cannot tell `a:b` from `a_b`, and Airflow
 * wrote it under the run id the caller knows.
 */
export function listedKey(implied: AttemptKey, filter: AttemptFilter): AttemptKey {
  if (
    filter.runId !== undefined &&
    filter.runId !== implied.runId &&
    sanitize(filter.runId) === sanitize(implied.runId)
  ) {
    return attemptKey({ ...implied, runId: filter.runId });
  }
  return implied;
}
