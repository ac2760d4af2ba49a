import { defaults } from './defaults.js';
import { configSchema } from './schema.js';

/** One configuration key as the docs list it. */
export interface SettingReference {
  /** `section.key`. */
  key: string;
  /** The built-in default as TOML would spell it (folders under `$TASKLOG_HOME`); '' for none. */
  default: string;
  /** What the key means (the schema's description). */
  description: string;
}

const HOME = '/TASKLOG_HOME';

/** Every key with its default and meaning, straight from the schema: what the docs show. */
export function settingsReference(): SettingReference[] {
  const values = defaults(HOME);
  return Object.entries(configSchema.shape).flatMap(([section, schema]) =>
    Object.entries(schema.shape).map(([name, field]) => {
      const key = `${section}.${name}`;
      const value = values[key];
      const shown =
        value === undefined
          ? ''
          : typeof value === 'string'
            ? JSON.stringify(value).replaceAll(HOME, '$TASKLOG_HOME')
            : String(value);
      return {
        key,
        default: shown,
        description: (field as { description?: string }).description ?? '',
      };
    }),
  );
}
