import { InvalidInputError, parseIntStrict } from '@tasklog/core';
import type { Request } from 'express';

/** A query parameter given at most once; a repeated one is an error, not a silent pick. */
export function queryParam(req: Request, name: string): string | undefined {
  const value = (req.query as Record<string, unknown>)[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    throw new InvalidInputError(`query parameter ${name} must be given once, as a plain value`);
  }
  return value;
}

/** An integer query parameter within [min, max]; `fallback` (or undefined) when it is absent. */
export function intQueryParam(
  req: Request,
  name: string,
  min: number,
  max: number,
): number | undefined;
export function intQueryParam(
  req: Request,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number;
export function intQueryParam(
  req: Request,
  name: string,
  min: number,
  max: number,
  fallback?: number,
): number | undefined {
  const text = queryParam(req, name);
  if (text === undefined) return fallback;
  const n = parseIntStrict(name, text);
  if (n < min || n > max) {
    throw new InvalidInputError(`${name} must be between ${min} and ${max}, got ${n}`);
  }
  return n;
}
