#!/usr/bin/env node
import { readFileSync, writeSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { GlobalOptions } from './context.js';
import { ExitCode } from './exit-status.js';

function integer(min: number) {
  return (value: string) => {
    if (!/^-?\d+$/.test(value) || Number(value) < min) {
      throw new InvalidArgumentError(`expected an integer >= ${min}`);
    }
    return Number(value);
  };
}

// Commands are imported when they run, so `tasklog fetch` does not load express, pino and the
// server, and `--help` loads nothing at all.
const commands = {
  fetch: () => import('./commands/fetch.js'),
  ship: () => import('./commands/ship.js'),
  serve: () => import('./commands/serve.js'),
  db: () => import('./commands/db.js'),
  configShow: () => import('./commands/config-show.js'),
  run: () => import('./commands/run.js'),
  agent: () => import('./commands/agent.js'),
  token: () => import('./commands/token.js'),
  doctor: () => import('./commands/doctor.js'),
  prune: () => import('./commands/prune.js'),
};

/** `withContext` of context.js, which loads the core library: only once a command runs. */
const withContext: typeof import('./context.js').withContext = async (global, flags, fn) => {
  endQuietlyOnClosedPipe();
  return (await import('./context.js')).withContext(global, flags, fn);
};

/**
 * A closed pipe (`tasklog fetch ... | head`) is a normal end, not an error. Set up when a command
 * runs: touching `process.stdout` loads Node's stream machinery, which `--help` does without.
 */
function endQuietlyOnClosedPipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.ok);
    throw err;
  });
}

/** Set by a command that succeeds yet must exit non-zero: `tasklog run` passes on its task's code. */
let commandExitCode: number = ExitCode.ok;

/** Writes to stdout (1) or stderr (2) without a stream; through one where the file refuses. */
function writeDirect(fd: 1 | 2, text: string): void {
  try {
    writeSync(fd, text);
  } catch {
    (fd === 1 ? process.stdout : process.stderr).write(text);
  }
}

/** The version in @tasklog/cli's package.json (beside `dist/`, in a clone and when installed). */
function packageVersion(): string {
  const file = new URL('../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

function buildProgram(): Command {
  const program = new Command('tasklog')
    .description('Ship, serve and fetch task-attempt logs (Apache Airflow layout).')
    .version(packageVersion(), '-V, --version', "print tasklog's version")
    .option('-c, --config <file>', 'TOML config file (default: $TASKLOG_CONFIG)')
    .showHelpAfterError('(run with --help for usage)')
    // Straight to the file descriptors: process.stdout would load Node's streams for one write.
    .configureOutput({
      writeOut: (text) => writeDirect(1, text),
      writeErr: (text) => writeDirect(2, text),
    })
    .exitOverride();
  const globals = () => program.opts<GlobalOptions>();

  program
    .command('fetch')
    .description("Print an attempt's log, from a tasklog server or straight from the store.")
    .argument('<dag_id>')
    .argument('<run_id>', 'e.g. scheduled__2024-01-01T00:00:00+00:00')
    .argument('<task_id>')
    .option('--try <n>', 'attempt number (default: the latest one known)', integer(1))
    .option('--map-index <n>', 'map index of a mapped task', integer(-1), -1)
    .option('--offset <n>', 'start at this byte offset', integer(0), 0)
    .option('-f, --follow', 'keep streaming a running attempt until it ends (reconnects by offset)')
    .option('-o, --output <file>', 'write to FILE (progress bar on a terminal) instead of stdout')
    .addOption(new Option('--server <url>', 'tasklog server to fetch through').conflicts('store'))
    .option('--store <url>', 'read straight from this store (default: store.url from config)')
    .option(
      '--token-cmd <command>',
      'with --server: a shell command printing the bearer token (default: $TASKLOG_TOKEN)',
    )
    .action((dagId, runId, taskId, opts) =>
      withContext(globals(), { 'store.url': opts.store }, async (ctx) =>
        (await commands.fetch()).fetchCommand(ctx, { dagId, runId, taskId }, opts),
      ),
    );

  program
    .command('ship')
    .description(
      'Ship finished logs at PATH (a file or folder under the base log folder) to the store; ' +
        'with --follow, ship one running attempt as it is written.',
    )
    .argument('<path...>')
    .option('--store <url>', 'destination store (default: store.url from config)')
    .option(
      '--follow',
      'ship a running attempt incrementally until "<log>.done" appears (SIGTERM stops, resumable)',
    )
    .option('--flush-interval <seconds>', 'with --follow: flush new bytes this often (default 5)')
    .option('--json', 'print the results as JSON')
    .action((paths, opts) =>
      withContext(
        globals(),
        { 'store.url': opts.store, 'store.flush_interval': opts.flushInterval },
        async (ctx) => (await commands.ship()).shipCommand(ctx, paths, opts),
      ),
    );

  program
    .command('run')
    .description(
      'Run COMMAND (after "--") as one task attempt: write its output, masked and timestamped, ' +
        'to the attempt log and ship it while it runs; exit with its exit code.',
    )
    .requiredOption('--dag <dag_id>', 'DAG id')
    .requiredOption('--run <run_id>', 'run id, e.g. scheduled__2024-01-01T00:00:00+00:00')
    .requiredOption('--task <task_id>', 'task id')
    .option('--try <n>', 'attempt number (default: 1 + the latest one known)', integer(1))
    .option('--map-index <n>', 'map index of a mapped task', integer(-1), -1)
    .option('--no-ship', 'only write the local log')
    .argument('<command...>', 'the command and its arguments, after "--"')
    .action(async (command: string[], opts) => {
      commandExitCode = await withContext(globals(), {}, async (ctx) =>
        (await commands.run()).runCommand(ctx, opts, command),
      );
    });

  program
    .command('serve')
    .description('Run the log proxy: serves archived logs over HTTP.')
    .option('--host <host>', 'address to bind (default: server.host, 127.0.0.1)')
    .option('--port <port>', 'port to bind, 0 for any (default: server.port, 8794)', integer(0))
    .option('--demo', 'first write and ship a small demo attempt')
    .option(
      '--insecure-no-auth',
      'allow auth.mode = "none" on an address other than loopback (anyone reaching it reads every log)',
    )
    .action((opts) =>
      withContext(globals(), { 'server.host': opts.host, 'server.port': opts.port }, async (ctx) =>
        (await commands.serve()).serveCommand(ctx, opts),
      ),
    );

  program
    .command('agent')
    .description('Run on a worker: ship running attempts live and serve their logs to the proxy.')
    .option('--host <host>', 'address to bind (default: agent.host, 127.0.0.1)')
    .option('--port <port>', 'port to bind, 0 for any (default: agent.port, 8795)', integer(0))
    .option('--url <url>', 'URL the proxy reaches this agent at (default: the bound URL)')
    .action((opts) =>
      withContext(
        globals(),
        { 'agent.host': opts.host, 'agent.port': opts.port, 'agent.url': opts.url },
        async (ctx) => {
          const a = ctx.config.agent;
          return (await commands.agent()).agentCommand(ctx, {
            host: a.host,
            port: a.port,
            url: a.url,
            tokenAlgorithm: a.token_algorithm,
            tokenSecret: a.token_secret,
            tokenSecretFile: a.token_secret_file,
            tokenPublicKey: a.token_public_key,
            tokenPublicKeyFile: a.token_public_key_file,
            tlsCert: a.tls_cert,
            tlsKey: a.tls_key,
            idleTimeout: a.idle_timeout,
            heartbeatInterval: a.heartbeat_interval,
            shutdownTimeout: a.shutdown_timeout,
            airflowSecretKey: a.airflow_secret_key,
            airflowClockGrace: a.airflow_clock_grace,
          });
        },
      ),
    );

  const token = program
    .command('token')
    .description(
      'Manage the API tokens of auth.mode = "tokens" (kept hashed in auth.tokens_file).',
    );
  token
    .command('create')
    .description('Create an API token and print it once; only its sha256 is kept.')
    .argument('<name>', 'who or what the token is for, e.g. ci or reports-bot')
    .option('--dags <patterns>', 'DAG ids it may read, comma-separated; * and ? match', '')
    .option('--admin', 'also see agent and store URLs and the details of /health')
    .option('--json', 'print as JSON')
    .action((name, opts) =>
      withContext(globals(), {}, async (ctx) =>
        (await commands.token()).tokenCreateCommand(ctx, name, opts),
      ),
    );
  token
    .command('list')
    .description('List the API tokens: names, grants, creation time (never the tokens).')
    .option('--json', 'print as JSON')
    .action((opts) =>
      withContext(globals(), {}, async (ctx) =>
        (await commands.token()).tokenListCommand(ctx, opts),
      ),
    );
  token
    .command('revoke')
    .description('Revoke an API token by name (takes effect within a second).')
    .argument('<name>')
    .action((name) =>
      withContext(globals(), {}, async (ctx) =>
        (await commands.token()).tokenRevokeCommand(ctx, name),
      ),
    );

  program
    .command('doctor')
    .description(
      'Check the configuration end to end: config, catalog, store (write, read, delete a probe), agents of running attempts, token keys; say what to fix.',
    )
    .option('--json', 'print the checks as JSON')
    .action(async (opts) => {
      commandExitCode = await (await commands.doctor()).doctorCommand(globals(), opts);
    });

  program
    .command('prune')
    .description(
      'Delete finished attempts (shipped, failed, abandoned) last changed before --older-than from their store and the catalog; never a running one. Resumable.',
    )
    .requiredOption('--older-than <duration>', 'age, e.g. 30d, 12h, 90m, 2w')
    .option(
      '--dag <pattern>',
      'only DAGs matching PATTERN (* and ? match); repeatable',
      (v: string, all: string[] = []) => [...all, v],
    )
    .option('--state <state...>', 'only these states: shipped, failed, abandoned')
    .option('--dry-run', 'list what would go, delete nothing')
    .option('--limit <n>', 'consider at most N attempts this run', integer(1))
    .option('--json', 'print the summary as JSON')
    .action(async (opts) => {
      commandExitCode = await withContext(globals(), {}, async (ctx) =>
        (await commands.prune()).pruneCommand(ctx, opts),
      );
    });

  const db = program.command('db').description('Manage the catalog database.');
  db.command('migrate')
    .description('Apply pending catalog schema migrations.')
    .option('--json', 'print the result as JSON')
    .action((opts) =>
      withContext(globals(), {}, async (ctx) => (await commands.db()).dbMigrateCommand(ctx, opts)),
    );

  const config = program.command('config').description('Inspect configuration.');
  config
    .command('show')
    .description('Show every key with its effective value and source (secrets masked).')
    .option('--json', 'print as JSON')
    .action(async (opts) => {
      endQuietlyOnClosedPipe();
      const { CommandContext } = await import('./context.js');
      await (await commands.configShow()).configShowCommand(new CommandContext(globals()), opts);
    });

  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return commandExitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0; usage errors are bad input.
      return err.exitCode === 0 ? ExitCode.ok : ExitCode.badInput;
    }
    const { describeError, exitCodeFor } = await import('./exit-codes.js');
    process.stderr.write(`${describeError(err)}\n`);
    return exitCodeFor(err);
  }
}

// The AWS SDK warns on every run under Node.js 20 that SDK releases after January 2027 will need
// Node.js 22. tasklog pins its SDK version in the lockfile, so for CLI users this is noise on
// stderr (which scripts read); libraries importing @tasklog/core still see it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

main(process.argv).then((code) => {
  process.exitCode = code;
});
