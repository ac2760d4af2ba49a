import { migrateCatalogUrl } from '@tasklog/core';
import type { CommandContext } from '../context.js';

export async function dbMigrateCommand(ctx: CommandContext, options: { json?: boolean }) {
  const url = ctx.config.catalog.url;
  const { applied } = await migrateCatalogUrl(url);
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ catalog: url, applied })}\n`);
  } else if (applied.length === 0) {
    process.stdout.write('catalog schema is up to date\n');
  } else {
    process.stdout.write(`applied ${applied.length} migration(s): ${applied.join(', ')}\n`);
  }
}
