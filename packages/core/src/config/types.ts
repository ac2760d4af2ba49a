import type { z } from 'zod';
import type { configSchema } from './schema.js';

/**
 * The effective configuration, as the schema (schema.ts and each backend's settings.ts)
 * declares it. Keys are snake_case as in the TOML file; each maps to an environment variable
 * `TASKLOG__<SECTION>__<KEY>` (e.g. `TASKLOG__STORE__URL`).
 */
export type TasklogConfig = z.output<typeof configSchema>;
