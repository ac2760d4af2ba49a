import { afterAll, beforeAll } from 'vitest';
import { makeTempDir, removeTempDir } from './temp-dir.js';

/** The TASKLOG_HOME the CLI runs with in a block of tests, and its environment there. */
export interface TasklogHome {
  /** The folder: made before the block's first test, removed after its last. */
  readonly dir: string;
  /** PATH, TASKLOG_HOME and the settings given or added: the environment the CLI runs with. */
  readonly env: NodeJS.ProcessEnv;
  /** Adds settings to `env`, e.g. in a beforeAll, once the servers they name are running. */
  configure(settings: NodeJS.ProcessEnv): void;
}

/**
 * Registers the hooks of a TASKLOG_HOME in the surrounding block (before the block's own): a new
 * temporary folder named `tasklog-<label>-…`, with `settings` in the CLI's environment.
 */
export function useTasklogHome(label: string, settings: NodeJS.ProcessEnv = {}): TasklogHome {
  let dir: string | undefined;
  let env: NodeJS.ProcessEnv = {};
  beforeAll(async () => {
    dir = await makeTempDir(label);
    env = { PATH: process.env.PATH, TASKLOG_HOME: dir, ...settings };
  });
  afterAll(async () => {
    await removeTempDir(dir);
  });
  return {
    get dir() {
      if (dir === undefined) throw new Error(`the ${label} home is made in a beforeAll`);
      return dir;
    },
    get env() {
      return env;
    },
    configure(more) {
      env = { ...env, ...more };
    },
  };
}
