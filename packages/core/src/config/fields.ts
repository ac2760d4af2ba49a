import { z } from 'zod';

/**
 * The zod builders every settings fragment uses. Input values may be strings (environment
 * variables, flags), so numbers and booleans are coerced from their usual spellings.
 */

/**
 * Set on a zod issue whose message already quotes the offending value, so the loader does not
 * append `, got "..."` a second time.
 */
export const MESSAGE_QUOTES_VALUE = 'messageQuotesValue';

const numeric = (v: unknown) =>
  typeof v === 'string' && /^\s*[-+]?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v;

export const bool = z.preprocess(
  // Environment values are strings; `1`/`0` is what shell scripts and compose files tend to use.
  (v) => {
    if (typeof v !== 'string') return v;
    const s = v.trim().toLowerCase();
    if (s === 'true' || s === '1') return true;
    if (s === 'false' || s === '0') return false;
    return v;
  },
  z.boolean({ error: 'expected a boolean (true, false, 1 or 0)' }),
);

const PORT = 'expected a port number 0-65535 (0 = any free port)';
export const port = z.preprocess(
  numeric,
  z
    .number({ error: PORT })
    .int({ error: PORT })
    .min(0, { error: PORT })
    .max(65535, { error: PORT }),
);

const SECONDS = 'expected a number of seconds >= 0';
export const seconds = z.preprocess(
  numeric,
  z.number({ error: SECONDS }).min(0, { error: SECONDS }).finite({ error: SECONDS }),
);

/** A whole number from `min` (default 1) to `max`; `what` is the whole error message. */
export const integer = (what: string, min = 1, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(
    numeric,
    z
      .number({ error: what })
      .int({ error: what })
      .min(min, { error: what })
      .max(max, { error: what }),
  );

export const attempts = integer('expected a number of attempts >= 1', 1, 100);
export const bytes = integer('expected a number of bytes >= 1');

/** A string where an empty one means "not set". */
export const optionalText = (what: string) =>
  z.preprocess(
    (v) => (typeof v === 'string' && v.trim() === '' ? undefined : v),
    z.string({ error: `expected ${what}` }).optional(),
  );

export const text = (what: string) =>
  z.string({ error: `expected ${what}` }).min(1, { error: `expected ${what}` });

/** An optional `http://` or `https://` URL; `noun` names it in errors (`endpoint URL`). */
export const httpUrl = (noun: string) =>
  optionalText(`an ${noun}`).refine((v) => v === undefined || /^https?:\/\/[^/]/.test(v), {
    error: `expected an http:// or https:// ${noun}`,
  });

export const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: `expected ${values.slice(0, -1).join(', ')} or ${values.at(-1)}` });
