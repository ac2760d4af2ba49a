import { formatAttempt, Shipper, type ShipResult } from '@tasklog/core';
import type { CommandContext } from '../context.js';
import { progressBar } from '../progress.js';

export async function shipCommand(
  ctx: CommandContext,
  paths: string[],
  options: { json?: boolean },
): Promise<void> {
  const shipper = new Shipper({
    store: await ctx.openStore(),
    catalog: await ctx.openCatalog(),
    pathTemplate: ctx.pathTemplate,
    baseLogFolder: ctx.config.core.base_log_folder,
    stateFolder: ctx.config.core.state_folder,
    deleteLocalCopy: ctx.config.core.delete_local_copy,
  });
  const results: ShipResult[] = [];
  const bar = progressBar('ship', !options.json);
  try {
    for await (const result of shipper.ship(paths, { onProgress: (d, t) => bar.update(d, t) })) {
      results.push(result);
      if (!options.json) {
        bar.stop();
        const what =
          result.outcome === 'shipped'
            ? `shipped ${result.uploaded} bytes`
            : 'already shipped, nothing to do';
        const deleted = result.deletedLocalCopy ? ', local copy deleted' : '';
        process.stdout.write(
          `${formatAttempt(result.key)}: ${what} (${result.size} bytes, sha256 ${result.sha256.slice(0, 12)}…)${deleted}\n`,
        );
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
