import { formatAttempt, InvalidInputError, type Shipper, type ShipResult } from '@tasklog/core';
import type { CommandContext } from '../context.js';
import { describeError } from '../exit-codes.js';
import { progressBar } from '../progress.js';

export interface ShipCommandOptions {
  json?: boolean;
  follow?: boolean;
}

export async function shipCommand(
  ctx: CommandContext,
  paths: string[],
  options: ShipCommandOptions,
): Promise<void> {
  const shipper = await ctx.shipper();
  if (options.follow) return follow(ctx, shipper, paths, options);

  const results: ShipResult[] = [];
  const bar = progressBar('ship', !options.json);
  try {
    for await (const result of shipper.ship(paths, { onProgress: (d, t) => bar.update(d, t) })) {
      results.push(result);
      if (!options.json) {
        bar.stop();
        process.stdout.write(`${describe(result)}\n`);
      }
    }
  } finally {
    bar.stop();
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ shipped: results }, null, 2)}\n`);
  } else if (results.length === 0) {
    process.stdout.write(
      `no attempt logs found at ${paths.join(', ')} (logs must match core.path_template under ${ctx.config.core.base_log_folder})\n`,
    );
  }
}

/**
 * Ships one running attempt as it is written, until its completion marker appears; SIGTERM or
 * SIGINT flushes what was read and stops, leaving the attempt resumable by a later run.
 */
async function follow(
  ctx: CommandContext,
  shipper: Shipper,
  paths: string[],
  options: ShipCommandOptions,
) {
  if (paths.length !== 1) {
    throw new InvalidInputError('--follow ships one running attempt: give exactly one log file');
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    const result = await shipper.follow(paths[0]!, {
      signal: stop.signal,
      flushIntervalMs: ctx.config.store.flush_interval * 1000,
      heartbeatIntervalMs: ctx.config.agent.heartbeat_interval * 1000,
      onRetry: reportOutage,
    });
    if (options.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else if (result.outcome === 'stopped') {
      process.stdout.write(
        `${formatAttempt(result.key)}: stopped with ${result.committedOffset} bytes in the store; run again to resume\n`,
      );
    } else process.stdout.write(`${describe(result)}\n`);
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

/**
 * Tells, on stderr, that the store (or catalog) is unavailable and shipping goes on by itself:
 * on the first failure and every tenth after, so a long outage does not flood the terminal.
 */
export function reportOutage(err: unknown, failures: number, delayMs: number): void {
  if (failures !== 1 && failures % 10 !== 0) return;
  process.stderr.write(
    `tasklog: ${describeError(err)}\ntasklog: the log stays on this machine and shipping resumes ` +
      `by itself when the store answers (try ${failures}, next in ${(delayMs / 1000).toFixed(1)} s)\n`,
  );
}

function describe(result: ShipResult): string {
  const what =
    result.outcome === 'shipped'
      ? `shipped ${result.uploaded} bytes`
      : 'already shipped, nothing to do';
  const deleted = result.deletedLocalCopy ? ', local copy deleted' : '';
  return `${formatAttempt(result.key)}: ${what} (${result.size} bytes, sha256 ${result.sha256.slice(0, 12)}…)${deleted}`;
}
