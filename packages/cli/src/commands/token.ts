import { createToken, readTokensFile, revokeToken } from '@tasklog/server';
import type { CommandContext } from '../context.js';

export async function tokenCreateCommand(
  ctx: CommandContext,
  name: string,
  opts: { dags: string; admin?: boolean; json?: boolean },
): Promise<void> {
  const dags = opts.dags
    .split(',')
    .map((d) => d.trim())
    .filter(Boolean);
  const admin = opts.admin === true;
  const file = ctx.config.auth.tokens_file;
  const token = await createToken(file, {
    name,
    dags: admin && dags.length === 0 ? ['*'] : dags,
    admin,
  });
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ name, token, dags, admin, file })}\n`);
    return;
  }
  process.stdout.write(`${token}\n`);
  process.stderr.write(
    `tasklog: token ${name} created in ${file}; it is shown only this once. Send it as ` +
      '"Authorization: Bearer <token>" (tasklog fetch: TASKLOG_TOKEN). The server needs auth.mode = "tokens".\n',
  );
}

export async function tokenListCommand(ctx: CommandContext, opts: { json?: boolean }) {
  const tokens = (await readTokensFile(ctx.config.auth.tokens_file)).map(
    ({ name, dags, admin, created }) => ({ name, dags, admin, created }),
  );
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ tokens }, null, 2)}\n`);
    return;
  }
  for (const t of tokens) {
    process.stdout.write(
      `${t.name}\t${t.dags.join(',') || '-'}\t${t.admin ? 'admin' : ''}\t${t.created}\n`,
    );
  }
}

export async function tokenRevokeCommand(ctx: CommandContext, name: string): Promise<void> {
  await revokeToken(ctx.config.auth.tokens_file, name);
  process.stdout.write(`token ${name} revoked\n`);
}
