import { CloudWatchApiError, errors } from './api-error.js';

/** A request body as the AWS JSON 1.1 protocol sends it, and the checks its fields get. */
export type Json = Record<string, unknown>;

export function timeRange(input: Json): { from: number; to: number } {
  const from = int(input, 'startTime', 0, Number.MAX_SAFE_INTEGER) ?? 0;
  const to = int(input, 'endTime', 0, Number.MAX_SAFE_INTEGER) ?? Number.MAX_SAFE_INTEGER;
  return { from, to };
}

export function str(input: Json, field: string, required = false): string | undefined {
  const v = input[field];
  if (v === undefined || v === null) {
    if (required) throw errors.validation(field, 'null', 'Member must not be null');
    return undefined;
  }
  if (typeof v !== 'string') throw errors.serialization(`${field} must be a string`);
  return v;
}

export function int(input: Json, field: string, min: number, max: number): number | undefined {
  const v = input[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw errors.serialization(`${field} must be an integer`);
  }
  if (v < min || v > max) {
    throw errors.validation(
      field,
      String(v),
      `Member must have value ${v < min ? `greater than or equal to ${min}` : `less than or equal to ${max}`}`,
    );
  }
  return v;
}

export function encodeToken(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeToken(token: string): unknown {
  try {
    return JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch (err) {
    throw new CloudWatchApiError('InvalidParameterException', `Invalid nextToken: ${String(err)}`);
  }
}
