import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI (`pnpm test` runs `tsc --build` first). */
export const CLI = fileURLToPath(new URL('../../packages/cli/bundle/main.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs `tasklog ARGS` to completion; stdout is kept as bytes (tests here keep it small). */
export async function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout: Buffer.concat(out), stderr };
}

/** Where Airflow writes the log whose relative path is `rel`: below `home`'s log folder, `logs`. */
export function homeLogFile(home: string, rel: string): string {
  return join(home, 'logs', ...rel.split('/'));
}

/**
 * Puts `content` where Airflow writes the log whose relative path is `rel` (below
 * `<home>/logs`, tasklog's default log folder), making its folders; returns the file's path.
 */
export async function writeHomeLog(
  home: string,
  rel: string,
  content: Buffer | string,
): Promise<string> {
  const file = homeLogFile(home, rel);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, content);
  return file;
}

/**
 * Puts `content` where Airflow writes the log whose relative path is `rel` (below
 * `$TASKLOG_HOME/logs`) and runs `tasklog ship` on that file.
 */
export async function shipWithCli(
  env: NodeJS.ProcessEnv,
  rel: string,
  content: Buffer | string,
): Promise<CliResult> {
  const file = await writeHomeLog(env.TASKLOG_HOME!, rel, content);
  return runCli(['ship', file], env);
}

/** Starts `tasklog serve` and resolves once it prints its URL. */
export function startServe(args: string[], env: NodeJS.ProcessEnv) {
  return startService('serve', args, env);
}

/** Starts a long-running `tasklog COMMAND --port 0` and resolves once it prints its URL. */
export async function startService(
  command: 'serve' | 'agent',
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ url: string; child: ChildProcess; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, command, '--port', '0', ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`${command} exited with ${code}: ${stderr}`)));
  });
  return {
    url,
    child,
    async stop() {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      return code;
    },
  };
}

/** Runs `tasklog ARGS` and returns the sha256 and size of its stdout, streamed. */
export async function runCliDigest(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; sha256: string; size: number; stderr: string }> {
  const { createHash } = await import('node:crypto');
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const hash = createHash('sha256');
  let size = 0;
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => {
    hash.update(b);
    size += b.length;
  });
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, sha256: hash.digest('hex'), size, stderr };
}
