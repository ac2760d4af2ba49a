import { describeConfig } from '@tasklog/core';
import type { CommandContext } from '../context.js';

/** Every key's effective value and where it came from; secrets are masked. */
export function configShowCommand(ctx: CommandContext, options: { json?: boolean }) {
  const rows = describeConfig(ctx.loaded);
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({ configFile: ctx.loaded.configPath ?? null, keys: rows }, null, 2)}\n`,
    );
    return;
  }
  const width = Math.max(...rows.map((r) => r.key.length));
  for (const r of rows) {
    const shown = r.value === undefined ? '(unset)' : JSON.stringify(r.value);
    process.stdout.write(`${r.key.padEnd(width)}  ${shown}  (${r.source})\n`);
  }
}
