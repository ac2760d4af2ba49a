import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import {
  type AttemptLog,
  attemptKey,
  BackendUnavailableError,
  configSecrets,
  DEFAULT_SENSITIVE_NAMES,
  type FollowResult,
  InvalidInputError,
  type MaskingStream,
  openAttemptLog,
  SecretMasker,
} from '@tasklog/core';
import type { CommandContext } from '../context.js';
import { describeError, exitCodeFor } from '../exit-codes.js';
import { reportOutage } from './ship.js';

export interface RunOptions {
  dag: string;
  run: string;
  task: string;
  /** Default: 1 + the latest try the catalog knows for the task (or 1). */
  try?: number;
  mapIndex?: number;
  /** `--no-ship` sets this to false: only the local log is written. */
  ship?: boolean;
}

/** Exit code when COMMAND cannot be started at all (the shell's "command not found"). */
const CANNOT_START = 127;

/**
 * A partial line is passed on once it reaches this size, so a program that never prints a
 * newline cannot make us buffer without bound.
 */
const MAX_PARTIAL_LINE = 64 * 1024;

/**
 * Runs COMMAND as the task attempt: its stdout and stderr go, masked and line-timestamped, to
 * the attempt's log (and, masked, to our own stdout/stderr), while the log is shipped as it
 * grows. Returns COMMAND's exit code (128 + n when a signal n ended it), which the CLI exits
 * with. The exit code is written to the completion marker, and the shipper records it in the
 * catalog. A store outage never changes the exit code: the log is kept and shipped later.
 */
export async function runCommand(
  ctx: CommandContext,
  options: RunOptions,
  argv: string[],
): Promise<number> {
  const [file, ...args] = argv;
  if (!file) throw new InvalidInputError('give the command to run after "--"');
  const mapIndex = options.mapIndex ?? -1;
  const task = { dagId: options.dag, runId: options.run, taskId: options.task, mapIndex };
  const tryNumber = options.try ?? ((await (await ctx.openCatalog()).latestTry(task)) ?? 0) + 1;
  const key = attemptKey({ ...task, tryNumber });
  // Airflow's sensitive names plus core.sensitive_names, the URLs' passwords in the environment,
  // and tasklog's own secrets: none of them may reach the task's log.
  const masker = SecretMasker.fromEnv(process.env, [
    ...DEFAULT_SENSITIVE_NAMES,
    ...ctx.config.core.sensitive_names
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean),
  ]);
  for (const secret of configSecrets(ctx.loaded)) masker.add(secret);

  const log = await openAttemptLog({
    baseLogFolder: ctx.config.core.base_log_folder,
    pathTemplate: ctx.pathTemplate,
    key,
    masker,
    timestamps: true,
  });

  // Started as soon as the file exists; it ends by itself once close() creates the marker.
  let following: Promise<{ result?: FollowResult; error?: unknown }> | undefined;
  const stopFollowing = new AbortController();
  if (options.ship !== false) {
    const shipper = await ctx.shipper();
    following = shipper
      .follow(log.path, {
        flushIntervalMs: ctx.config.store.flush_interval * 1000,
        heartbeatIntervalMs: ctx.config.agent.heartbeat_interval * 1000,
        signal: stopFollowing.signal,
        onRetry: reportOutage,
      })
      .then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      );
  }

  let exitCode: number;
  try {
    exitCode = await runChild(file, args, log, masker);
    await log.close({ state: exitCode === 0 ? 'success' : 'failed', exitCode });
  } catch (err) {
    // The log could not be written or closed: without a marker the follow would wait forever.
    // Stopped, it flushes what it read and leaves the attempt resumable.
    stopFollowing.abort();
    await following;
    throw err;
  }

  if (following) {
    // The task's exit code is what the caller waits for: the log gets `store.finish_grace` to
    // reach the store, then it stays on this machine for the agent or a later `tasklog ship`.
    let ended = await within(following, ctx.config.store.finish_grace * 1000);
    if (ended === undefined) {
      stopFollowing.abort();
      ended = await within(following, STOP_GRACE_MS);
    }
    const { result, error } = ended ?? {};
    if (error !== undefined) {
      process.stderr.write(
        `${describeError(error)}\ntasklog: the log stays at ${log.path}; ship it later with "tasklog ship"\n`,
      );
      // An outage must not cost the task its exit code; any other failure of a clean run is ours.
      if (exitCode === 0 && !(error instanceof BackendUnavailableError)) return exitCodeFor(error);
    } else if (result === undefined || result.outcome === 'stopped') {
      process.stderr.write(
        `tasklog: the store did not take the whole log within store.finish_grace ` +
          `(${ctx.config.store.finish_grace} s); it stays at ${log.path}, and the agent (or ` +
          `"tasklog ship") archives it when the store answers\n`,
      );
    }
  }
  return exitCode;
}

/** How long a follow told to stop gets to flush and return before `run` exits anyway. */
const STOP_GRACE_MS = 5_000;

/** `promise`'s value, or undefined if it does not settle within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Spawns the command, pumps its output and resolves with the exit code to report. */
async function runChild(
  file: string,
  args: string[],
  log: AttemptLog,
  masker: SecretMasker,
): Promise<number> {
  const child = spawn(file, args, { stdio: ['inherit', 'pipe', 'pipe'] });
  // Terminal Ctrl-C reaches the child too (same process group); forwarding covers `kill <pid>`
  // and supervisors that signal only us.
  const forward = (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once('close', (code, signal) => resolve({ code, signal }));
        child.on('error', (err) => {
          // Only a failed spawn is final here; other errors (e.g. a failed kill) are followed
          // by 'close' anyway.
          if (child.pid === undefined) reject(err);
        });
      },
    );
    const pumps = Promise.all([
      pump(child.stdout, process.stdout, log, masker.stream()),
      pump(child.stderr, process.stderr, log, masker.stream()),
    ]);
    pumps.catch(() => {}); // awaited below, after the child has ended
    let outcome: { code: number | null; signal: NodeJS.Signals | null };
    try {
      outcome = await ended;
    } catch (err) {
      const message = `tasklog: cannot start ${JSON.stringify(file)}: ${(err as Error).message}\n`;
      process.stderr.write(message);
      await pumps.catch(() => {});
      await log.write(message);
      return CANNOT_START;
    }
    await pumps;
    if (outcome.code !== null) return outcome.code;
    return 128 + (outcome.signal ? (constants.signals[outcome.signal] ?? 0) : 0);
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
  }
}

/**
 * Copies one output stream of the child to the log in whole lines, so stdout and stderr lines
 * never interleave mid-line in the log, and echoes it (masked) to `echo`.
 */
async function pump(
  source: Readable,
  echo: Writable,
  log: AttemptLog,
  echoMasking: MaskingStream,
): Promise<void> {
  let partial: Buffer[] = [];
  let partialBytes = 0;
  let failure: { error: unknown } | undefined;
  const echoOut = async (bytes: Buffer) => {
    if (bytes.length && !echo.write(bytes)) await once(echo, 'drain');
  };
  // After a failed write the child's output is still drained (and echoed): a child blocked on a
  // full pipe would never exit.
  const toLog = async (bytes: Buffer) => {
    if (failure) return;
    await log.write(bytes).catch((error: unknown) => {
      failure = { error };
    });
  };
  for await (const chunk of source as AsyncIterable<Buffer>) {
    await echoOut(echoMasking.push(chunk));
    const nl = chunk.lastIndexOf(0x0a);
    if (nl < 0) {
      partial.push(chunk);
      partialBytes += chunk.length;
      if (partialBytes >= MAX_PARTIAL_LINE) {
        await toLog(Buffer.concat(partial));
        partial = [];
        partialBytes = 0;
      }
      continue;
    }
    partial.push(chunk.subarray(0, nl + 1));
    await toLog(Buffer.concat(partial));
    const rest = chunk.subarray(nl + 1);
    partial = rest.length ? [rest] : [];
    partialBytes = rest.length;
  }
  if (partialBytes) await toLog(Buffer.concat(partial));
  await echoOut(echoMasking.end());
  if (failure) throw failure.error;
}
