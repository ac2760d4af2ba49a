import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { maskUrlPasswords, urlPasswords } from '../redact.js';
import { defaults } from './defaults.js';
import { CONFIG_KEYS, CONFIG_SECTIONS, configSchema, MESSAGE_QUOTES_VALUE } from './schema.js';
import type { TasklogConfig } from './types.js';

/** Where one configuration value came from. */
export interface ConfigValueSource {
  /**
   * Where the value came from: `default`, `file /etc/tasklog.toml`, `env TASKLOG__STORE__URL`,
   * `flag --store`, `command from env TASKLOG__STORE__URL_CMD`, ...
   */
  source: string;
  /** The value must not be shown (it came from a command, or the key names a credential). */
  secret: boolean;
}

/** The result of `loadConfig`. */
export interface LoadedConfig {
  /** The validated configuration, relative folders made absolute. */
  config: TasklogConfig;
  /** By dotted key (`store.url`); every key has an entry. */
  sources: Record<string, ConfigValueSource>;
  /** Absolute path of the TOML file that was read, if any. */
  configPath?: string;
}

/** Options of `loadConfig`; all optional. */
export interface LoadConfigOptions {
  /** From `--config`; wins over `env.TASKLOG_CONFIG`. Relative to `cwd`. */
  configPath?: string;
  /** Default `process.env`. Also the environment `_cmd` commands run with. */
  env?: NodeJS.ProcessEnv;
  /** Dotted keys (`store.url`, `server.port`, or `store.url_cmd`); undefined values are ignored. */
  flags?: Record<string, unknown>;
  /** How each flag is shown in sources and errors, e.g. `{ 'server.port': '--port' }`. */
  flagNames?: Record<string, string>;
  /** Base for relative paths that did not come from the file. Default `process.cwd()`. */
  cwd?: string;
  /** Limit for each `_cmd` command. Default 30 s. */
  commandTimeoutMs?: number;
}

const ENV_PREFIX = 'TASKLOG__';
const CMD_SUFFIX = '_cmd';
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const SECRET_NAME = /password|secret|token|api_key|private_key|passwd|authorization/i;
// Userinfo ends at the last `@` before the path; the password is what follows the first `:`.
const KNOWN_KEYS: ReadonlySet<string> = new Set(CONFIG_KEYS);

/** `TASKLOG_HOME`, else `~/.tasklog`. */
export function defaultHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.TASKLOG_HOME || join(homedir(), '.tasklog');
}

/** A value as given by one layer, before `_cmd` commands run. */
interface RawEntry {
  /** Dotted key as given, possibly ending in `_cmd`. */
  key: string;
  value: unknown;
  /** `file /path`, `env NAME`, `flag --name`. */
  source: string;
  /** Folder that relative paths (and commands) are taken relative to. */
  baseDir: string;
  /** How a key is spelled in this layer, for "did you mean" hints. */
  spell: (dottedKey: string) => string;
}

interface Setting {
  value: unknown;
  source: string;
  secret: boolean;
  baseDir: string;
}

/**
 * Builds the effective configuration: built-in defaults < TOML file < environment
 * (`TASKLOG__SECTION__KEY`) < flags. Any key may be given as `KEY_cmd`, a shell command whose
 * stdout is the (secret) value.
 *
 * @throws ConfigError with every problem found (unreadable file, unknown keys, failing
 *   commands, invalid values), each naming its key and where the value came from.
 */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = resolve(options.cwd ?? process.cwd());
  const issues: ConfigIssue[] = [];
  const run: CommandRunner = {
    env,
    timeoutMs: options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
  };

  const merged = new Map<string, Setting>();
  for (const [key, value] of Object.entries(defaults(resolve(cwd, defaultHome(env))))) {
    merged.set(key, { value, source: 'default', secret: false, baseDir: cwd });
  }

  let configPath: string | undefined;
  let configSource: string | undefined;
  if (options.configPath !== undefined) {
    configPath = resolve(cwd, options.configPath);
    configSource = options.flagNames?.config ?? 'flag --config';
  } else if (env.TASKLOG_CONFIG) {
    configPath = resolve(cwd, env.TASKLOG_CONFIG);
    configSource = 'env TASKLOG_CONFIG';
  }
  const layers: RawEntry[][] = [];
  if (configPath !== undefined) {
    layers.push(fileEntries(configPath, configSource ?? 'file', issues));
  }
  layers.push(envEntries(env, cwd, issues));
  layers.push(flagEntries(options.flags ?? {}, options.flagNames ?? {}, cwd));

  for (const layer of layers) {
    for (const [key, setting] of resolveLayer(layer, run, issues)) merged.set(key, setting);
  }

  const sources: Record<string, ConfigValueSource> = {};
  const input: Record<string, Record<string, unknown>> = {};
  for (const key of CONFIG_KEYS) {
    const setting = merged.get(key)!;
    sources[key] = { source: setting.source, secret: setting.secret || SECRET_NAME.test(key) };
    const [section, name] = splitKey(key);
    input[section] ??= {};
    input[section][name] = setting.value;
  }

  const result = configSchema.safeParse(input);
  if (!result.success) {
    const reported = new Set<string>();
    for (const issue of result.error.issues) {
      const key = issue.path.slice(0, 2).join('.');
      if (reported.has(key)) continue;
      reported.add(key);
      const setting = merged.get(key);
      const quotes = (issue as { params?: Record<string, unknown> }).params?.[MESSAGE_QUOTES_VALUE];
      const message =
        quotes || !setting ? issue.message : `${issue.message}, got ${showValue(key, setting)}`;
      issues.push({ key, source: setting?.source ?? 'default', message });
    }
  }
  if (!result.success || issues.length > 0) throw new ConfigError(issues);

  const config = result.data;
  // A relative folder in the file means "next to this file"; elsewhere, "from where I run".
  const base = (key: string) => merged.get(key)!.baseDir;
  config.core.base_log_folder = resolve(base('core.base_log_folder'), config.core.base_log_folder);
  config.core.state_folder = resolve(base('core.state_folder'), config.core.state_folder);
  config.auth.tokens_file = resolve(base('auth.tokens_file'), config.auth.tokens_file);
  return configPath === undefined ? { config, sources } : { config, sources, configPath };
}

/**
 * Every key with its effective value and source, in a stable order. Secret values are shown as
 * `***`, and so is the password of any URL with userinfo (`postgres://u:***@h/db`).
 */
export function describeConfig(
  loaded: LoadedConfig,
): Array<{ key: string; value: unknown; source: string }> {
  return Object.entries(loaded.config).flatMap(([section, values]) =>
    Object.entries(values as Record<string, unknown>).map(([name, value]) => {
      const key = `${section}.${name}`;
      const source = loaded.sources[key] ?? { source: 'default', secret: false };
      const secret = source.secret || SECRET_NAME.test(key);
      return { key, value: secret ? '***' : maskUrlPassword(value), source: source.source };
    }),
  );
}

/**
 * Every secret of the configuration, for a masker: the values of secret keys (given through
 * `_cmd`, or named like a credential: a catalog or Airflow database URL's password, the agent's
 * token secret, `auth.secret` …) and the passwords of URLs in any value.
 */
export function configSecrets(loaded: LoadedConfig): string[] {
  const found = new Set<string>();
  for (const [section, values] of Object.entries(loaded.config)) {
    for (const [name, value] of Object.entries(values as Record<string, unknown>)) {
      if (typeof value !== 'string') continue;
      const key = `${section}.${name}`;
      // A built-in default is no secret (`agent.token_algorithm = "HS512"` must not be masked).
      if (loaded.sources[key]?.source === 'default') continue;
      if (loaded.sources[key]?.secret || SECRET_NAME.test(key)) found.add(value);
      for (const password of urlPasswords(value)) found.add(password);
    }
  }
  return [...found];
}

function fileEntries(path: string, pathSource: string, issues: ConfigIssue[]): RawEntry[] {
  const source = `file ${path}`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(err);
    issues.push({ key: 'config', source: pathSource, message: `cannot read ${path}: ${why}` });
    return [];
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    // smol-toml's message embeds a code frame; the first line is the reason.
    const reason = err.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '');
    issues.push({
      key: 'config',
      source,
      message: `invalid TOML in ${path} at line ${err.line}, column ${err.column}: ${reason}`,
    });
    return [];
  }
  const baseDir = dirname(path);
  const spell = (k: string) => k;
  const entries: RawEntry[] = [];
  for (const [section, table] of Object.entries(doc)) {
    if (!CONFIG_SECTIONS.includes(section)) {
      issues.push({ key: section, source, message: unknownMessage(section, spell, true) });
      continue;
    }
    if (typeof table !== 'object' || table === null || Array.isArray(table)) {
      issues.push({ key: section, source, message: `expected a [${section}] table` });
      continue;
    }
    for (const [name, value] of Object.entries(table)) {
      entries.push({ key: `${section}.${name}`, value, source, baseDir, spell });
    }
  }
  return entries;
}

function envEntries(env: NodeJS.ProcessEnv, cwd: string, issues: ConfigIssue[]): RawEntry[] {
  const spell = (k: string) => `${k} (${ENV_PREFIX}${k.replace('.', '__').toUpperCase()})`;
  const entries: RawEntry[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const parts = name.slice(ENV_PREFIX.length).toLowerCase().split('__');
    const source = `env ${name}`;
    if (parts.length !== 2 || !parts[0] || !parts[1]) {
      issues.push({
        key: parts.join('.'),
        source,
        message: `expected a variable named ${ENV_PREFIX}<SECTION>__<KEY>, e.g. TASKLOG__STORE__URL`,
      });
      continue;
    }
    entries.push({ key: `${parts[0]}.${parts[1]}`, value, source, baseDir: cwd, spell });
  }
  return entries;
}

function flagEntries(
  flags: Record<string, unknown>,
  flagNames: Record<string, string>,
  cwd: string,
): RawEntry[] {
  const spell = (k: string) => k;
  return Object.entries(flags)
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => ({
      key,
      value,
      source: `flag ${flagNames[key] ?? key}`,
      baseDir: cwd,
      spell,
    }));
}

/**
 * Checks one layer's keys and runs its `_cmd` commands. Within a layer a key may be given
 * directly or as a command, not both: which one was meant would be a guess.
 */
function resolveLayer(
  entries: RawEntry[],
  run: CommandRunner,
  issues: ConfigIssue[],
): Map<string, Setting> {
  const direct = new Map<string, RawEntry>();
  const commands = new Map<string, RawEntry>();
  for (const entry of entries) {
    const isCommand = entry.key.endsWith(CMD_SUFFIX) && !KNOWN_KEYS.has(entry.key);
    const key = isCommand ? entry.key.slice(0, -CMD_SUFFIX.length) : entry.key;
    if (!KNOWN_KEYS.has(key)) {
      issues.push({
        key: entry.key,
        source: entry.source,
        message: unknownMessage(entry.key, entry.spell, false),
      });
      continue;
    }
    (isCommand ? commands : direct).set(key, entry);
  }

  const out = new Map<string, Setting>();
  for (const [key, entry] of direct) {
    const command = commands.get(key);
    if (command) {
      issues.push({
        key,
        source: `${entry.source} and ${command.source}`,
        message: `set either ${key} or ${key}${CMD_SUFFIX}, not both`,
      });
      continue;
    }
    out.set(key, {
      value: entry.value,
      source: entry.source,
      secret: false,
      baseDir: entry.baseDir,
    });
  }
  for (const [key, entry] of commands) {
    if (direct.has(key)) continue;
    if (typeof entry.value !== 'string' || entry.value.trim() === '') {
      issues.push({ key, source: entry.source, message: 'expected a shell command (a string)' });
      continue;
    }
    const value = runCommand(entry.value, entry.baseDir, run);
    if (typeof value !== 'string') {
      issues.push({ key, source: entry.source, message: value.error });
      continue;
    }
    out.set(key, {
      value,
      source: `command from ${entry.source}`,
      secret: true,
      baseDir: entry.baseDir,
    });
  }
  return out;
}

interface CommandRunner {
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
}

function runCommand(command: string, cwd: string, run: CommandRunner): string | { error: string } {
  try {
    const stdout = execFileSync('/bin/sh', ['-c', command], {
      cwd,
      env: run.env,
      timeout: run.timeoutMs,
      encoding: 'utf8',
      // Without explicit pipes, execFileSync copies the child's stderr to ours.
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Only one newline: `printf 'x\n\n'` means a value that ends in a newline.
    return stdout.replace(/\r?\n$/, '');
  } catch (err) {
    const e = err as NodeJS.ErrnoException & {
      status?: number | null;
      signal?: string | null;
      stderr?: string;
    };
    const stderr = typeof e.stderr === 'string' ? e.stderr.trim().split('\n')[0] : undefined;
    let why: string;
    if (e.code === 'ETIMEDOUT') why = `timed out after ${run.timeoutMs / 1000} s`;
    else if (typeof e.status === 'number') why = `exited with status ${e.status}`;
    else if (e.signal) why = `was killed by ${e.signal}`;
    else why = `could not run (${e.message})`;
    return { error: `command ${JSON.stringify(command)} ${why}${stderr ? `: ${stderr}` : ''}` };
  }
}

/** Sections that had another name, so an old file gets told the new one. */
const RENAMED_SECTIONS: Record<string, string> = { stackdriver: 'cloud_logging' };

function unknownMessage(given: string, spell: (k: string) => string, isSection: boolean): string {
  const what = isSection ? 'section' : 'key';
  const [section, ...rest] = given.split('.');
  const renamed = RENAMED_SECTIONS[section!];
  if (renamed !== undefined) {
    const now = [renamed, ...rest].join('.');
    return `unknown ${what} ${spell(given)}: the section is now called ${renamed}, write ${spell(now)}`;
  }
  const isCommand = !isSection && given.endsWith(CMD_SUFFIX);
  const base = isCommand ? given.slice(0, -CMD_SUFFIX.length) : given;
  const candidates = isSection ? CONFIG_SECTIONS : CONFIG_KEYS;
  const best = closest(base, candidates);
  if (best === undefined) {
    return `unknown ${what} ${spell(given)}; known ${what}s are ${candidates.join(', ')}`;
  }
  return `unknown ${what} ${spell(given)}; did you mean ${spell(isCommand ? `${best}${CMD_SUFFIX}` : best)}?`;
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = levenshtein(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        prev[j]! + 1,
        row[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length]!;
}

function splitKey(key: string): [string, string] {
  const dot = key.indexOf('.');
  return [key.slice(0, dot), key.slice(dot + 1)];
}

function maskUrlPassword(value: unknown): unknown {
  return typeof value === 'string' ? maskUrlPasswords(value) : value;
}

/** The offending value for an error message, without revealing secrets. */
function showValue(key: string, setting: Setting): string {
  if (setting.secret || SECRET_NAME.test(key)) return 'a value from a command (not shown)';
  return JSON.stringify(maskUrlPassword(setting.value)) ?? String(setting.value);
}
