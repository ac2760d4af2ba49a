import {
  type AttemptRecord,
  FINISHED_STATES,
  type FinishedState,
  formatAttempt,
  InvalidInputError,
  type PruneSummary,
  parseDuration,
  pruneAttempts,
} from '@tasklog/core';
import type { CommandContext } from '../context.js';
import { exitCodeFor } from '../exit-codes.js';
import { ExitCode } from '../exit-status.js';
import { trustedStores } from '../retention.js';

export interface PruneCommandOptions {
  olderThan: string;
  dag?: string[];
  state?: string[];
  dryRun?: boolean;
  json?: boolean;
  limit?: number;
}

/**
 * `tasklog prune`: deletes finished attempts last changed before `--older-than` from their store
 * and the catalog (see `pruneAttempts` for the order that makes it resumable). Exit code 0 when
 * every candidate was deleted or skipped for a reason the summary gives; otherwise the code of
 * the first failure (3 for an unavailable store), the failed attempts left for the next run.
 */
export async function pruneCommand(
  ctx: CommandContext,
  options: PruneCommandOptions,
): Promise<number> {
  const olderThan = new Date(Date.now() - parseDuration(options.olderThan));
  const states = parseStates(options.state);
  const store = await ctx.openStore();
  const catalog = await ctx.openCatalog();
  const stores = trustedStores(ctx, store);
  let firstError: unknown;
  const listing = options.dryRun && !options.json;
  let summary: PruneSummary;
  try {
    summary = await pruneAttempts({
      catalog,
      stores,
      olderThan,
      ...(options.dag !== undefined ? { dags: options.dag } : {}),
      ...(states !== undefined ? { states } : {}),
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
      dryRun: options.dryRun === true,
      onDeleted: listing
        ? (r) => process.stdout.write(`${describe(r, stores.urlOf(r.storeUrl))}\n`)
        : undefined,
      onError: (err) => {
        firstError ??= err;
      },
    });
  } finally {
    await stores.close();
  }
  if (options.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else process.stdout.write(report(summary));
  return firstError === undefined ? ExitCode.ok : exitCodeFor(firstError);
}

/** `--state` values, comma-separated or repeated; finished states only. */
function parseStates(values: string[] | undefined): FinishedState[] | undefined {
  if (values === undefined) return undefined;
  const states = values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  const bad = states.filter((s) => !(FINISHED_STATES as readonly string[]).includes(s));
  if (bad.length > 0 || states.length === 0) {
    throw new InvalidInputError(
      `--state must be one or more of ${FINISHED_STATES.join(', ')} (running and shipping attempts are never pruned), got ${bad.join(', ') || 'none'}`,
    );
  }
  return states as FinishedState[];
}

function describe(r: AttemptRecord, storeUrl: string): string {
  const size = r.size === null ? 'size unknown' : `${r.size} bytes`;
  return `would delete ${formatAttempt(r.key)} (${r.state}, ${size}, last changed ${r.updatedAt.toISOString()}) from ${storeUrl}`;
}

function report(s: PruneSummary): string {
  const verb = s.dryRun ? 'would delete' : 'deleted';
  const lines = [
    `${verb} ${s.deleted.attempts} attempt(s), ${s.deleted.bytes} bytes, last changed before ${s.olderThan}`,
  ];
  for (const st of s.stores) {
    lines.push(
      `  ${st.url}: ${st.attempts} attempt(s), ${st.bytes} bytes` +
        (st.skipped ? `, ${st.skipped} skipped` : '') +
        (st.failed ? `, ${st.failed} failed` : ''),
    );
  }
  if (s.skipped.attempts > 0) {
    const reasons = Object.entries(s.skipped.reasons).map(([r, n]) => `${r} ${n}`);
    lines.push(`skipped ${s.skipped.attempts}: ${reasons.join(', ')}`);
    for (const n of s.skipped.list)
      lines.push(`  ${formatAttempt(n)} in ${n.storeUrl}: ${n.reason}`);
  }
  if (s.failed.attempts > 0) {
    lines.push(`failed ${s.failed.attempts} (left for the next run):`);
    for (const n of s.failed.list) lines.push(`  ${formatAttempt(n)}: ${n.reason}`);
  }
  if (!s.complete)
    lines.push('stopped before the last candidate (--limit); run again for the rest');
  return `${lines.join('\n')}\n`;
}
