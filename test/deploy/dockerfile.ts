/**
 * Just enough of the Dockerfile format to run tasklog's own Dockerfile without a container
 * engine: its instructions by stage (continuations joined, comments dropped, `ARG`/`ENV`
 * expanded), and its build context as `.dockerignore` selects it.
 *
 * The instructions the Dockerfile uses are the ones understood here; anything else is reported,
 * so a new kind of step cannot go untested silently.
 */
import { cp, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';

export interface Instruction {
  /** Upper-case keyword: `RUN`, `COPY`, ... */
  op: string;
  /** The rest of the line, continuations joined. */
  args: string;
  /** `--from=build` → `{ from: 'build' }`. */
  flags: Record<string, string>;
  /** Line number of the instruction's first line. */
  line: number;
}

export interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** `ARG`s declared before the first `FROM`, with their defaults. */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

const KNOWN = [
  'ARG',
  'FROM',
  'WORKDIR',
  'COPY',
  'RUN',
  'ENV',
  'USER',
  'VOLUME',
  'EXPOSE',
  'HEALTHCHECK',
  'ENTRYPOINT',
  'CMD',
  'LABEL',
];

/** Splits a Dockerfile into stages of instructions. Throws on an instruction it does not know. */
export function parseDockerfile(text: string): Dockerfile {
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let logical = lines[i]!.trim();
    if (logical === '' || logical.startsWith('#')) continue;
    while (logical.endsWith('\\')) {
      logical = logical.slice(0, -1);
      // Comment lines inside a continued instruction are dropped, as Docker does.
      do i++;
      while (i < lines.length && lines[i]!.trim().startsWith('#'));
      logical += ` ${(lines[i] ?? '').trim()}`;
    }
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(logical) ?? [];
    const keyword = op.toUpperCase();
    if (!KNOWN.includes(keyword)) throw new Error(`line ${start}: unsupported ${keyword}`);
    const flags: Record<string, string> = {};
    let args = rest;
    for (let m = /^--([a-z-]+)=(\S+)\s+/.exec(args); m; m = /^--([a-z-]+)=(\S+)\s+/.exec(args)) {
      flags[m[1]!] = m[2]!;
      args = args.slice(m[0].length);
    }
    if (keyword === 'FROM') {
      const [, base = '', name = String(stages.length)] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)!;
      stages.push({ name, base: expand(base, globalArgs), instructions: [] });
      continue;
    }
    const instruction = { op: keyword, args: args.trim(), flags, line: start };
    if (stages.length === 0) {
      if (keyword !== 'ARG') throw new Error(`line ${start}: ${keyword} before FROM`);
      const [name = '', value = ''] = instruction.args.split('=');
      globalArgs[name] = value;
      continue;
    }
    stages.at(-1)!.instructions.push(instruction);
  }
  return { globalArgs, stages };
}

/** `$NAME` and `${NAME}` replaced from `vars` (unknown names become empty, as in Docker). */
export function expand(text: string, vars: Record<string, string | undefined>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => vars[a ?? b] ?? '');
}

/** `KEY=value KEY2="v w"` pairs of an `ENV` or `LABEL` line, in order. */
export function keyValues(args: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (const m of args.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const raw = m[2]!;
    pairs.push([m[1]!, raw.startsWith('"') ? JSON.parse(raw) : raw]);
  }
  return pairs;
}

/** The JSON array of an exec-form `CMD`/`ENTRYPOINT`/`HEALTHCHECK CMD`. */
export function execForm(args: string): string[] {
  const json = args.slice(args.indexOf('['));
  const parsed = JSON.parse(json) as unknown;
  if (!Array.isArray(parsed)) throw new Error(`not an exec form: ${args}`);
  return parsed as string[];
}

/** One `.dockerignore` pattern as a regular expression over slash-separated relative paths. */
function patternRegex(pattern: string): RegExp {
  let source = '';
  const p = pattern.replace(/^\/+|\/+$/g, '');
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*' && p[i + 1] === '*') {
      // `**/` matches any number of folders, also none.
      source += p[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += p[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  // A pattern that names a folder excludes everything below it.
  return new RegExp(`^${source}(?:/.*)?$`);
}

/** Whether `.dockerignore`'s rules leave `path` (relative, slash-separated) out of the context. */
export function ignoredBy(dockerignore: string): (path: string) => boolean {
  const rules = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => ({ negate: l.startsWith('!'), re: patternRegex(l.replace(/^!/, '')) }));
  return (path) => {
    let ignored = false;
    for (const rule of rules) if (rule.re.test(path)) ignored = !rule.negate;
    return ignored;
  };
}

/** Copies the build context of `root` into `dest`, leaving out what `.dockerignore` names. */
export async function copyContext(root: string, dest: string, dockerignore: string) {
  const ignored = ignoredBy(dockerignore);
  await cp(root, dest, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (src) => {
      const rel = relative(root, src).split('\\').join('/');
      return rel === '' || !ignored(rel);
    },
  });
}

/** Every file below `dir` (relative paths), for comparing a tree before and after a run. */
export async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}
