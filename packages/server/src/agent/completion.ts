import { readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import type { AttemptEnd, AttemptKey } from '@tasklog/core';
import type { Logger } from 'pino';
import { mapLimit } from './map-limit.js';

/** An attempt log the agent follows; it has no completion marker (the marker always counts). */
export interface TrackedAttempt {
  readonly key: AttemptKey;
  readonly relativePath: string;
  /** Absolute path of the local log. */
  readonly file: string;
}

/** What the Airflow rule needs of core's `AirflowDb`: each try's status, in one batched query. */
export interface AirflowTryStatuses {
  statusOf(
    keys: readonly AttemptKey[],
    options?: { signal?: AbortSignal },
  ): Promise<({ finished: boolean; state: string | null } | undefined)[]>;
  close(): Promise<void>;
}

/** `false`: still running; else how it ended. */
export type Verdict = false | AttemptEnd;

/**
 * How the agent knows that an attempt without a completion marker has finished
 * (`agent.completion`). `judge` is called once per scan with every such attempt, so a rule that
 * asks a database asks once for all of them.
 */
export interface CompletionRule {
  judge(attempts: readonly TrackedAttempt[], signal?: AbortSignal): Promise<Verdict[]>;
  close(): Promise<void>;
}

/**
 * Finished when the log has not grown for `idleTimeoutMs` (by its mtime, so an agent restarted
 * after a long pause judges at once) and, where `/proc` shows it, no process holds the file open
 * for writing. `state` is what such an end is recorded as: `shipped` for `completion = "idle"`,
 * `abandoned` where idleness is only the fallback (a marker or Airflow's word was expected).
 */
export function idleRule(idleTimeoutMs: number, state: 'shipped' | 'abandoned'): CompletionRule {
  return {
    async judge(attempts) {
      const now = Date.now();
      const idle = await mapLimit(attempts, 32, async (a) => {
        const info = await stat(a.file).catch(() => undefined);
        // A log that vanished has nothing more coming.
        return info === undefined || now - info.mtimeMs >= idleTimeoutMs;
      });
      const candidates = attempts.filter((_, i) => idle[i]);
      const writing = candidates.length ? await filesOpenForWriting(candidates) : new Set();
      return attempts.map((a, i) => (idle[i] && !writing.has(a.file) ? { state } : false));
    },
    async close() {},
  };
}

/**
 * Finished when Airflow's metadata database says the try has ended (moved past it, or a state
 * that ends a try); `deferred` and `up_for_reschedule` are not an end. Attempts Airflow does not
 * know, and every attempt while the database is unreachable, fall back to `idle` (recorded
 * `abandoned`), with a warning once per outage.
 */
export function airflowDbRule(
  db: AirflowTryStatuses,
  idle: CompletionRule,
  logger: Logger,
): CompletionRule {
  let unreachable = false;
  return {
    async judge(attempts, signal) {
      let statuses: Awaited<ReturnType<AirflowTryStatuses['statusOf']>>;
      try {
        statuses = await db.statusOf(
          attempts.map((a) => a.key),
          { signal },
        );
        if (unreachable) logger.info("Airflow's metadata database answers again");
        unreachable = false;
      } catch (err) {
        if (!unreachable) {
          logger.warn(
            { err },
            "cannot read Airflow's metadata database (agent.airflow_db_url); attempts without a " +
              'completion marker finish only by agent.idle_timeout until it answers',
          );
        }
        unreachable = true;
        return idle.judge(attempts, signal);
      }
      const unknown = attempts.filter((_, i) => statuses[i] === undefined);
      const fallback = unknown.length ? await idle.judge(unknown, signal) : [];
      let next = 0;
      return statuses.map((status): Verdict => {
        if (status === undefined) return fallback[next++] ?? false;
        return status.finished ? { state: 'shipped', airflowState: status.state } : false;
      });
    },
    async close() {
      await db.close();
    },
  };
}

/**
 * Which of the attempts' files some process (other than this one) has open for writing, read
 * from `/proc/<pid>/fd` and `fdinfo` (the access mode in `flags`). Processes we may not inspect
 * are skipped; without `/proc` (another OS, a hidden PID namespace) the set is empty, so the
 * idle timeout alone decides.
 */
export async function filesOpenForWriting(
  attempts: readonly TrackedAttempt[],
): Promise<Set<string>> {
  const wanted = new Map<string, string>(); // real path -> attempt file
  for (const a of attempts) {
    const real = await realpath(a.file).catch(() => undefined);
    if (real) wanted.set(real, a.file);
  }
  const found = new Set<string>();
  if (wanted.size === 0) return found;
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  } catch {
    return found;
  }
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or another user's process
    }
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => undefined);
      const file = target === undefined ? undefined : wanted.get(target);
      if (file === undefined) continue;
      const info = await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => '');
      const flags = /^flags:\s*([0-7]+)/m.exec(info)?.[1];
      // O_ACCMODE is 3: 1 is O_WRONLY, 2 O_RDWR. Unknown flags count as a writer, to be safe.
      const mode = flags === undefined ? 1 : Number.parseInt(flags, 8) & 3;
      if (mode === 1 || mode === 2) found.add(file);
    }
  }
  return found;
}
