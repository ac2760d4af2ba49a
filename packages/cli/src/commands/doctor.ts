import { createHash, randomBytes } from 'node:crypto';
import {
  attemptKey,
  type Catalog,
  type LogStore,
  loadAgentTokenKeys,
  maskUrlPasswords,
  signAgentToken,
  verifyAgentToken,
} from '@tasklog/core';
import { CommandContext, type GlobalOptions } from '../context.js';
import { ExitCode } from '../exit-status.js';

/** One line of the report. */
export interface DoctorCheck {
  name: 'config' | 'catalog' | 'store' | 'agents' | 'tokens';
  status: 'ok' | 'warn' | 'fail' | 'skipped';
  detail: string;
  /** What to do about a warning or failure. */
  fix?: string;
}

/** How long each network check may take. */
const TIMEOUT_MS = 10_000;
/** Agents of running attempts asked at most. */
const MAX_AGENTS = 20;

/**
 * `tasklog doctor`: checks a configuration end to end, in the order a deployment needs it
 * (config, catalog, store, agents, token keys), and says what to fix. The store is probed with a
 * real write, read and delete of a scratch attempt (`dag_id=tasklog_doctor`), so a store that
 * answers pings but refuses writes is caught. Exit code: 0 when nothing failed, 2 for a config
 * that does not load, 3 when a backend failed.
 */
export async function doctorCommand(
  global: GlobalOptions,
  options: { json?: boolean },
): Promise<number> {
  const checks: DoctorCheck[] = [];
  let ctx: CommandContext;
  try {
    ctx = new CommandContext(global);
  } catch (err) {
    checks.push({
      name: 'config',
      status: 'fail',
      detail: describeError(err),
      fix: 'correct the setting named above; `tasklog config show` lists every key and its source',
    });
    print(checks, options.json);
    return ExitCode.badInput;
  }
  try {
    const path = ctx.loaded.configPath;
    checks.push({
      name: 'config',
      status: 'ok',
      detail: path ? `${path} loaded and valid` : 'no config file; defaults and environment valid',
    });
    const local =
      !/^[a-z][a-z0-9+.-]*:\/\//i.test(ctx.config.store.url) ||
      ctx.config.store.url.startsWith('file:');
    const fixes = local ? { ...FIXES, store: LOCAL_STORE_FIX } : FIXES;
    const catalog = await check(checks, fixes, 'catalog', () => checkCatalog(ctx));
    await check(checks, fixes, 'store', () => checkStore(ctx));
    if (catalog) await check(checks, fixes, 'agents', () => checkAgents(catalog));
    else checks.push({ name: 'agents', status: 'skipped', detail: 'needs the catalog' });
    await check(checks, fixes, 'tokens', () => checkTokens(ctx));
  } finally {
    await ctx.close();
  }
  print(checks, options.json);
  return checks.some((c) => c.status === 'fail') ? ExitCode.backendUnavailable : ExitCode.ok;
}

type Outcome<T> = Omit<DoctorCheck, 'name'> & { value?: T };

/** Runs one check; a thrown error is its failure, with the error's own advice. */
async function check<T>(
  checks: DoctorCheck[],
  fixes: Record<DoctorCheck['name'], string>,
  name: DoctorCheck['name'],
  run: () => Promise<Outcome<T>>,
): Promise<T | undefined> {
  try {
    const { value, ...result } = await run();
    checks.push({ name, ...result });
    return value;
  } catch (err) {
    checks.push({ name, status: 'fail', detail: describeError(err), fix: fixes[name] });
    return undefined;
  }
}

const FIXES: Record<DoctorCheck['name'], string> = {
  config: 'correct the setting named above',
  catalog:
    'check catalog.url (or catalog.url_cmd) and that the database answers from here; a schema that is not migrated needs `tasklog db migrate`',
  store:
    'check store.url, the credentials this process gets (environment, profile, workload identity) and that they may write, read and delete under the store’s prefix',
  agents:
    'each agent must be reachable from the proxy at the URL it registered (agent.url); check agent.allowed_urls, firewalls and that the agent runs',
  tokens:
    'the proxy signs with agent.token_secret or agent.token_private_key; every agent must verify with the same secret or the matching public key',
};

const LOCAL_STORE_FIX =
  'the archive folder must exist and be writable by this user: create it (mkdir -p) or point store.url at one that is';

async function checkCatalog(ctx: CommandContext): Promise<Outcome<Catalog>> {
  const catalog = await ctx.openCatalog();
  await catalog.ping();
  return {
    status: 'ok',
    detail: `${maskUrlPasswords(catalog.url)} reachable, schema current`,
    value: catalog,
  };
}

/** Writes, reads back and deletes a scratch attempt. */
async function checkStore(ctx: CommandContext): Promise<Outcome<void>> {
  const store: LogStore = await ctx.openStore();
  const signal = AbortSignal.timeout(TIMEOUT_MS * 3);
  await store.ping({ signal });
  const key = attemptKey({
    dagId: 'tasklog_doctor',
    runId: `probe__${new Date().toISOString().replace(/[:.]/g, '-')}_${randomBytes(4).toString('hex')}`,
    taskId: 'probe',
    mapIndex: -1,
    tryNumber: 1,
  });
  const bytes = Buffer.from(`tasklog doctor probe ${randomBytes(8).toString('hex')}\n`);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const writer = await store.openWriter(key);
  try {
    await writer.append(bytes);
    await writer.finish({ size: bytes.length, sha256 });
  } catch (err) {
    await writer.abort().catch(() => undefined);
    throw err;
  }
  try {
    const back: Buffer[] = [];
    for await (const chunk of store.read(key, { signal })) back.push(Buffer.from(chunk.bytes));
    if (!Buffer.concat(back).equals(bytes)) {
      return {
        status: 'fail',
        detail: `${store.url}: the probe read back differs from what was written`,
        fix: 'another writer shares this prefix, or the store does not keep bytes as written',
      };
    }
  } finally {
    await store.delete(key, { signal });
  }
  return { status: 'ok', detail: `${store.url}: wrote, read back and deleted a probe log` };
}

/** Asks the agents of running attempts whether they answer. */
async function checkAgents(catalog: Catalog): Promise<Outcome<void>> {
  const running = (await catalog.list({}, { limit: 10_000 })).filter(
    (r) => r.state === 'running' && r.agentUrl,
  );
  const urls = [...new Set(running.map((r) => r.agentUrl as string))].slice(0, MAX_AGENTS);
  if (urls.length === 0) {
    return { status: 'ok', detail: 'no running attempt names an agent; nothing to reach' };
  }
  const results = await Promise.all(
    urls.map(async (url) => {
      try {
        const res = await fetch(new URL('health/live', withSlash(url)), {
          signal: AbortSignal.timeout(TIMEOUT_MS),
        });
        return res.ok ? undefined : `${url}: HTTP ${res.status}`;
      } catch (err) {
        return `${url}: ${describeError(err)}`;
      }
    }),
  );
  const failed = results.filter((r): r is string => r !== undefined);
  if (failed.length > 0) {
    return { status: 'fail', detail: failed.join('; '), fix: FIXES.agents };
  }
  return { status: 'ok', detail: `${urls.length} agent(s) of running attempts answer` };
}

/** Signs a token as the proxy would and verifies it as an agent would. */
async function checkTokens(ctx: CommandContext): Promise<Outcome<void>> {
  const a = ctx.config.agent;
  const signing =
    a.token_secret ?? a.token_secret_file ?? a.token_private_key ?? a.token_private_key_file;
  if (signing === undefined) {
    return {
      status: 'warn',
      detail: 'no agent token key: the proxy follows running attempts from the archive only',
      fix: 'set agent.token_secret (or agent.token_private_key on the proxy and agent.token_public_key on agents) to follow them live',
    };
  }
  const proxyKeys = await loadAgentTokenKeys({
    algorithm: a.token_algorithm,
    secret: a.token_secret,
    secretFile: a.token_secret_file,
    privateKeyPem: a.token_private_key,
    privateKeyFile: a.token_private_key_file,
  });
  const asymmetric = a.token_algorithm === 'EdDSA' || a.token_algorithm === 'ES256';
  const hasPublic = a.token_public_key !== undefined || a.token_public_key_file !== undefined;
  if (asymmetric && !hasPublic) {
    return {
      status: 'ok',
      detail: `${a.token_algorithm} private key loads (no public key configured here to compare with)`,
    };
  }
  const agentKeys = await loadAgentTokenKeys({
    algorithm: a.token_algorithm,
    secret: a.token_secret,
    secretFile: a.token_secret_file,
    publicKeyPem: a.token_public_key,
    publicKeyFile: a.token_public_key_file,
  });
  const relativePath = 'tasklog_doctor/probe.log';
  const token = await signAgentToken(proxyKeys, { relativePath });
  await verifyAgentToken(agentKeys, token, { relativePath });
  return {
    status: 'ok',
    detail: `${a.token_algorithm}: a token the proxy signs is accepted by an agent with this configuration`,
  };
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

/** An error as one line: its message (and its cause's), passwords in URLs masked. */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return maskUrlPasswords(String(err));
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
  return maskUrlPasswords(`${err.message}${cause}`);
}

const MARKS: Record<DoctorCheck['status'], string> = {
  ok: 'ok  ',
  warn: 'warn',
  fail: 'FAIL',
  skipped: 'skip',
};

function print(checks: DoctorCheck[], json: boolean | undefined): void {
  if (json) {
    const ok = !checks.some((c) => c.status === 'fail');
    process.stdout.write(`${JSON.stringify({ ok, checks }, null, 2)}\n`);
    return;
  }
  for (const c of checks) {
    process.stdout.write(`${MARKS[c.status]}  ${c.name.padEnd(7)}  ${c.detail}\n`);
    if (c.fix && c.status !== 'ok') process.stdout.write(`               fix: ${c.fix}\n`);
  }
}
