import { InvalidInputError } from '@tasklog/core';
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
