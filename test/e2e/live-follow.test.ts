import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { CLI, writeHomeLog } from '../support/cli.js';
import { untilRunning, useAgentAndProxy } from '../support/live-services.js';
import { useTasklogHome } from '../support/tasklog-home.js';

const REL = 'dag_id=live/run_id=manual__2026-01-01T00:00:00+00:00/task_id=tail/attempt=1.log';

describe('following a running attempt: agent → proxy → tasklog fetch --follow', () => {
  const cli = useTasklogHome('live', {
    // The proxy signs agent tokens with the secret the agents verify them with.
    TASKLOG__AGENT__TOKEN_SECRET: randomBytes(64).toString('base64'),
    TASKLOG__STORE__FLUSH_INTERVAL: '0.2',
  });
  const services = useAgentAndProxy(cli);

  it('streams the log as it is written and ends with the whole log once the attempt finishes', async () => {
    const file = await writeHomeLog(cli.dir, REL, 'first line é\n');

    // Wait until the agent has picked the attempt up and told the catalog where it runs.
    await untilRunning(services.proxy.url, 'live');

    const follower = spawn(
      process.execPath,
      [
        CLI,
        'fetch',
        'live',
        'manual__2026-01-01T00:00:00+00:00',
        'tail',
        '--follow',
        '--server',
        services.proxy.url,
      ],
      { env: cli.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out: Buffer[] = [];
    let stderr = '';
    follower.stdout.on('data', (b: Buffer) => out.push(b));
    follower.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });

    for (let i = 0; i < 30; i++) {
      await appendFile(file, `[${i}] ${'€'.repeat(i * 7)} line ${i}\n`);
      await new Promise((r) => setTimeout(r, 30));
    }
    await appendFile(file, 'last line, no newline');
    await writeFile(`${file}.done`, JSON.stringify({ state: 'success', exitCode: 0 }));

    const [code] = (await once(follower, 'close')) as [number | null];
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(Buffer.concat(out).equals(await readFile(file))).toBe(true);
  });
});
