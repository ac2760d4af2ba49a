import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, type ConfigIssue, type LoadConfigOptions, loadConfig } from '@tasklog/core';
import { afterEach, beforeEach, expect } from 'vitest';

/**
 * What the configuration tests share: a new folder per test (`dir`, with TASKLOG_HOME at
 * `home` inside it), set by the hooks `useFolderPerTest()` registers, and loading with an
 * environment of the test's own.
 */
export let dir: string;
export let home: string;

export function useFolderPerTest(): void {
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'tasklog-config-'));
    home = join(dir, 'home');
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });
}

/** Writes a TOML file into the test folder and returns its path. */
export function toml(text: string, name = 'tasklog.toml'): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** Loads with an isolated environment: only PATH (for `_cmd`), TASKLOG_HOME and `env`. */
export function load(options: LoadConfigOptions = {}) {
  return loadConfig({
    cwd: dir,
    ...options,
    env: { PATH: process.env.PATH, TASKLOG_HOME: home, ...options.env },
  });
}

export function issuesOf(fn: () => unknown): ConfigIssue[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

/**
 * Expects loading with the one variable in `env` to fail with one issue only: `key`'s, its source
 * that variable, its message containing `containing`.
 */
export function expectOneEnvIssue(
  env: Record<string, string>,
  key: string,
  containing: string,
  options: LoadConfigOptions = {},
): void {
  const [name] = Object.keys(env);
  expect(issuesOf(() => load({ ...options, env }))).toEqual([
    { key, source: `env ${name}`, message: expect.stringContaining(containing) },
  ]);
}
