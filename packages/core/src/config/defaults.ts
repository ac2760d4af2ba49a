import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { configSchema } from './schema.js';

/**
 * The defaults that depend on `home` (`TASKLOG_HOME`); every other key's default is declared
 * with the key, in the schema.
 */
export function homeDefaults(home: string) {
  return {
    core: { base_log_folder: join(home, 'logs'), state_folder: join(home, 'state') },
    store: { url: pathToFileURL(join(home, 'archive')).href },
    auth: { tokens_file: join(home, 'tokens.json') },
    catalog: { url: `sqlite://${join(home, 'catalog.db')}` },
  };
}

/** Every key's built-in default, as `section.key` → value (undefined: no default). */
export function defaults(home: string): Record<string, unknown> {
  const input: Record<string, object> = homeDefaults(home);
  for (const section of Object.keys(configSchema.shape)) input[section] ??= {};
  const config = configSchema.parse(input) as Record<string, Record<string, unknown>>;
  return Object.fromEntries(
    Object.entries(configSchema.shape).flatMap(([section, schema]) =>
      Object.keys(schema.shape).map((name) => [`${section}.${name}`, config[section]?.[name]]),
    ),
  );
}
