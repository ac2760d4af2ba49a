/**
 * deploy/systemd/: the two units parse and keep their hardening, and their environment names
 * only real settings. Two layers: a small INI parse that always runs (required keys and
 * values), and `systemd-analyze verify` where the machine has it (it does where this was
 * written: Debian 12, systemd 252), which reads the units as systemd itself would and reports
 * unknown keys and unparsable values. verify also checks that ExecStart's binary is executable;
 * the copies it checks run a stub in its place, since `tasklog` is not installed at
 * /usr/local/bin here.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { settingsReference } from '@tasklog/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const DIR = fileURLToPath(new URL('../../deploy/systemd/', import.meta.url));
const UNITS = { proxy: 'tasklog-proxy.service', agent: 'tasklog-agent.service' } as const;
const BINARY = '/usr/local/bin/tasklog';
const run = promisify(execFile);

/** A unit file: section → key → every value given (keys may repeat). */
type Unit = Record<string, Record<string, string[]>>;

/** systemd's unit syntax, as far as these files use it: sections, `Key=value`, comments. */
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section: Record<string, string[]> | undefined;
  for (const raw of text.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      unit[header[1]!] ??= {};
      section = unit[header[1]!];
      continue;
    }
    const eq = line.indexOf('=');
    if (section === undefined || eq < 1) throw new Error(`not a unit line: ${line}`);
    const key = line.slice(0, eq).trim();
    section[key] = [...(section[key] ?? []), line.slice(eq + 1).trim()];
  }
  return unit;
}

/** `Environment=NAME=value` entries of a [Service] section. */
const environment = (unit: Unit) =>
  Object.fromEntries(
    (unit.Service!.Environment ?? []).map((e) => [
      e.slice(0, e.indexOf('=')),
      e.slice(e.indexOf('=') + 1),
    ]),
  );

let work: string;
const units = {} as Record<keyof typeof UNITS, Unit>;
let envFile: [string, string][];

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tasklog-systemd-'));
  for (const [role, file] of Object.entries(UNITS)) {
    units[role as keyof typeof UNITS] = parseUnit(await readFile(join(DIR, file), 'utf8'));
  }
  envFile = (await readFile(join(DIR, 'tasklog.env.example'), 'utf8'))
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
});

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('the systemd units', () => {
  it.each(Object.keys(UNITS))('%s runs its tasklog command, restarted on failure', (role) => {
    const service = units[role as keyof typeof UNITS].Service!;
    expect(service.ExecStart).toEqual([`${BINARY} ${role === 'proxy' ? 'serve' : 'agent'}`]);
    expect(service.Restart).toEqual(['on-failure']);
    expect(service.EnvironmentFile).toEqual(['-/etc/tasklog/tasklog.env']);
    expect(units[role as keyof typeof UNITS].Install!.WantedBy).toEqual(['multi-user.target']);
  });

  it.each(Object.keys(UNITS))(
    '%s is hardened: own user, read-only system, no new privileges',
    (role) => {
      const unit = units[role as keyof typeof UNITS];
      const service = unit.Service!;
      const ownUser =
        service.DynamicUser?.[0] === 'yes' || (service.User?.[0] ?? 'root') !== 'root';
      expect(ownUser).toBe(true);
      for (const [key, value] of Object.entries({
        NoNewPrivileges: 'yes',
        ProtectSystem: 'strict',
        ProtectHome: 'yes',
        PrivateTmp: 'yes',
        CapabilityBoundingSet: '',
      })) {
        expect(service[key], key).toEqual([value]);
      }
      // What it may write: TASKLOG_HOME, and for the agent the log folder (local copies deleted).
      const writable = service.ReadWritePaths!.join(' ').split(/\s+/);
      const env = environment(unit);
      expect(writable).toContain(env.TASKLOG_HOME);
      expect(env.TASKLOG_HOME).toBe(`/var/lib/${service.StateDirectory![0]}`);
      if (role === 'agent') expect(writable).toContain(env.TASKLOG__CORE__BASE_LOG_FOLDER);
    },
  );

  it('name only real settings, in the units and in the environment file', () => {
    const settings = new Set(settingsReference().map((s) => s.key));
    const names = [
      ...Object.values(units).flatMap((u) => Object.keys(environment(u))),
      ...envFile.map(([name]) => name),
    ].filter((n) => n.startsWith('TASKLOG__'));
    expect(names.length).toBeGreaterThan(5);
    for (const name of names) {
      const key = name
        .slice('TASKLOG__'.length)
        .toLowerCase()
        .replace('__', '.')
        .replace(/_cmd$/, '');
      expect(settings.has(key), name).toBe(true);
    }
  });

  it('load every credential that a _cmd setting of the environment file reads', () => {
    const read = envFile
      .filter(([name]) => name.endsWith('_CMD'))
      .map(([, command]) => /^cat \$CREDENTIALS_DIRECTORY\/(\S+)$/.exec(command)?.[1]);
    expect(read).toEqual(['catalog-url', 'agent-token-secret']);
    for (const unit of Object.values(units)) {
      const loaded = unit.Service!.LoadCredential!.map((c) => c.split(':')[0]);
      expect(loaded).toEqual(expect.arrayContaining(read));
    }
  });

  const analyze = (async () => {
    try {
      await run('systemd-analyze', ['--version']);
      return true;
    } catch {
      return false;
    }
  })();

  it('pass `systemd-analyze verify` (skipped where systemd-analyze is missing)', async (ctx) => {
    if (!(await analyze)) ctx.skip();
    const stub = join(work, 'tasklog');
    await writeFile(stub, '#!/bin/sh\nexit 0\n');
    await chmod(stub, 0o755);
    const copies: string[] = [];
    for (const file of Object.values(UNITS)) {
      const text = await readFile(join(DIR, file), 'utf8');
      await writeFile(join(work, file), text.replaceAll(BINARY, stub));
      copies.push(join(work, file));
    }
    const { stdout, stderr } = await run('systemd-analyze', ['verify', ...copies], { cwd: work });
    expect({ stdout, stderr }).toEqual({ stdout: '', stderr: '' });
  });
});
