/**
 * tasklog-emulator: runs one emulator in its own process, for tools that cannot start it
 * in-process (benchmarks, other languages' clients, a shell):
 *
 *   tasklog-emulator <name> [--port 0] [--host 127.0.0.1] [options]
 *
 * Once listening it prints one JSON line on stdout, `{"emulator": NAME, "url": …, "port": …}`
 * (plus what else a client needs), and stops on SIGTERM or SIGINT. The HTTP emulators take
 * faults over HTTP under `/_emulator/` (shared/faults.ts).
 */
import { spawn } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { constants } from 'node:os';
import { parseArgs } from 'node:util';
import { type Launcher, launchers, port, type Started, UsageError } from './launchers.js';

const COMMON_HELP = [
  '--port N            port to listen on (default 0: any free port)',
  '--host ADDRESS      interface to listen on (default 127.0.0.1)',
  '-h, --help          this help',
];

function usage(only?: string): string {
  const names = only ? [only] : Object.keys(launchers);
  const lines = [
    `usage: tasklog-emulator ${only ?? '<name>'} [--port N] [--host ADDRESS] [options]`,
    '',
    'Prints one JSON line with where to connect once listening; stops on SIGTERM/SIGINT.',
    '',
    'common options:',
    ...COMMON_HELP.map((l) => `  ${l}`),
  ];
  for (const name of names) {
    const launcher = launchers[name]!;
    lines.push('', `${name}: ${launcher.summary}`, ...launcher.help.map((l) => `  ${l}`));
  }
  return `${lines.join('\n')}\n`;
}

function fail(message: string, name?: string): never {
  process.stderr.write(`tasklog-emulator: ${message}\n\n${usage(name)}`);
  process.exit(2);
}

/** Whether this process can use DES, i.e. runs with OpenSSL's legacy provider. */
function desAvailable(): boolean {
  try {
    createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs this same command again in a child with `--openssl-legacy-provider` (it can only be
 * enabled at start-up), passing signals on and exiting as the child exits.
 */
function relaunchWithLegacyOpenssl(): void {
  const args = ['--openssl-legacy-provider', ...process.execArgv, ...process.argv.slice(1)];
  const child = spawn(process.execPath, args, { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('exit', (code, signal) => {
    process.exit(code ?? (signal ? 128 + constants.signals[signal] : 1));
  });
}

async function run(name: string, launcher: Launcher, argv: string[]): Promise<void> {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string', default: '0' },
        host: { type: 'string', default: '127.0.0.1' },
        help: { type: 'boolean', short: 'h' },
        ...launcher.options,
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail((err as Error).message, name);
  }
  if (values.help) {
    process.stdout.write(usage(name));
    return;
  }
  if (launcher.needsLegacyOpenssl && !desAvailable()) return relaunchWithLegacyOpenssl();
  let started: Started;
  try {
    const listen = { host: String(values.host), port: port('port', values.port as string) };
    started = await launcher.start(values as Parameters<Launcher['start']>[0], listen);
  } catch (err) {
    // RangeError: a value the emulator refuses, such as a bucket name GCS would not accept.
    if (err instanceof UsageError || err instanceof RangeError) fail(err.message, name);
    process.stderr.write(`tasklog-emulator: cannot start ${name}: ${String(err)}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ emulator: name, ...started.info })}\n`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    started.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`tasklog-emulator: closing ${name} failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

const [name, ...rest] = process.argv.slice(2);
if (name === undefined || name === '--help' || name === '-h') {
  if (name === undefined) fail('which emulator?');
  process.stdout.write(usage());
} else {
  const launcher = Object.hasOwn(launchers, name) ? launchers[name] : undefined;
  if (!launcher) fail(`unknown emulator ${JSON.stringify(name)}`);
  await run(name, launcher, rest);
}
