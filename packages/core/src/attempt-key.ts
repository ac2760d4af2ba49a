import { InvalidInputError } from './errors.js';

/** One attempt of one task instance: Airflow's (dag_id, run_id, task_id, map_index, try_number). */
export interface AttemptKey {
  /** Airflow's `dag_id`. */
  readonly dagId: string;
  /** Airflow's `run_id`, e.g. `scheduled__2024-01-01T00:00:00+00:00`. */
  readonly runId: string;
  /** Airflow's `task_id`. */
  readonly taskId: string;
  /** -1 for a task that is not mapped. */
  readonly mapIndex: number;
  /** 1 for the first attempt. */
  readonly tryNumber: number;
}

// Control characters (C0, DEL, C1) and both path separators. Airflow run ids contain
// `:`, `+` and `.` (`scheduled__2024-01-01T00:00:00+00:00`); those are legal.
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f/\\]/;
/** The longest id component: Airflow's ID_LEN for dag_id/task_id/run_id. */
export const MAX_ID_LENGTH = 250;
// With the `u` flag only unpaired surrogates match. They have no UTF-8 form: file systems, HTTP
// and JSON turn them into U+FFFD, so two different ids would land on one file.
const LONE_SURROGATE = /[\ud800-\udfff]/u;

/** Throws InvalidInputError unless `value` may be one component of an AttemptKey. */
export function validateId(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidInputError(`${field} must be a non-empty string`);
  }
  if (value.length > MAX_ID_LENGTH) {
    throw new InvalidInputError(`${field} is longer than ${MAX_ID_LENGTH} characters`);
  }
  if (value === '.' || value === '..') {
    throw new InvalidInputError(`${field} must not be "." or ".."`);
  }
  if (LONE_SURROGATE.test(value)) {
    throw new InvalidInputError(
      `${field} is not well-formed Unicode (it has an unpaired surrogate)`,
    );
  }
  const bad = FORBIDDEN.exec(value);
  if (bad) {
    const ch = bad[0].codePointAt(0)!.toString(16).padStart(4, '0');
    throw new InvalidInputError(
      `${field} contains a forbidden character (U+${ch}): "/", "\\" and control characters are not allowed`,
    );
  }
  return value;
}

function validateInt(field: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidInputError(`${field} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/** Validates every field and returns a frozen copy; throws InvalidInputError naming the field. */
export function attemptKey(input: {
  dagId: unknown;
  runId: unknown;
  taskId: unknown;
  mapIndex?: unknown;
  tryNumber: unknown;
}): AttemptKey {
  return Object.freeze({
    dagId: validateId('dagId', input.dagId),
    runId: validateId('runId', input.runId),
    taskId: validateId('taskId', input.taskId),
    mapIndex: validateInt('mapIndex', input.mapIndex ?? -1, -1),
    tryNumber: validateInt('tryNumber', input.tryNumber, 1),
  });
}

/** Parses a decimal integer string strictly (no sign tricks, no floats, no blanks). */
export function parseIntStrict(field: string, text: string): number {
  if (!/^-?(0|[1-9][0-9]*)$/.test(text)) {
    throw new InvalidInputError(`${field} must be an integer, got "${text}"`);
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new InvalidInputError(`${field} is out of range: ${text}`);
  return n;
}

/** Whether two keys name the same attempt (all five fields equal). */
export function sameAttempt(a: AttemptKey, b: AttemptKey): boolean {
  return (
    a.dagId === b.dagId &&
    a.runId === b.runId &&
    a.taskId === b.taskId &&
    a.mapIndex === b.mapIndex &&
    a.tryNumber === b.tryNumber
  );
}

/** A short human form for messages: `dag/run/task[map]#try`. */
export function formatAttempt(k: AttemptKey): string {
  const map = k.mapIndex >= 0 ? `[${k.mapIndex}]` : '';
  return `${k.dagId}/${k.runId}/${k.taskId}${map}#${k.tryNumber}`;
}
