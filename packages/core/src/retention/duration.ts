import { InvalidInputError } from '../errors.js';

const UNITS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * A duration written as a whole number and a unit, `90m`, `12h`, `30d`, `2w` (also `s`), in
 * milliseconds. Throws InvalidInputError for anything else, or for a zero duration: an age of
 * zero would make every finished attempt "old", which is never what a typo meant.
 */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+)\s*([smhdw])\s*$/i.exec(text);
  const ms = m === null ? Number.NaN : Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(ms) || ms <= 0) {
    throw new InvalidInputError(
      `expected a duration such as 90m, 12h, 30d or 2w (a positive whole number and a unit s, m, h, d or w), got ${JSON.stringify(text)}`,
    );
  }
  return ms;
}
