import type { LogLine } from './log-lines.js';

/**
 * What a line means beyond its text: its level, whether it opens or closes one of Airflow's
 * `::group::` sections (folded like Airflow's and GitHub's log views do), and whether it belongs
 * to a Python traceback. Groups and tracebacks span lines, so they are computed over the lines
 * the view holds, in one pass each time those lines change.
 */

export type Level = 'critical' | 'error' | 'warning' | 'info' | 'debug';

export interface LineDeco {
  level?: Level;
  /** The line opens a group: its title. */
  groupTitle?: string;
  /** The line is a `::endgroup::` marker (not shown). */
  groupEnd?: boolean;
  /** The innermost open group's header line, when the header is among the held lines. */
  parent?: LogLine;
  /** The header's group is closed within the held lines. */
  closed?: boolean;
  /** Part of a traceback: 'start', inside, or the exception line that ends it. */
  traceback?: 'start' | 'body' | 'end';
}

const decos = new WeakMap<LogLine, LineDeco>();

export function decoOf(line: LogLine): LineDeco {
  return decos.get(line) ?? {};
}

// Airflow: `[ts] {file.py:12} INFO - msg`; Airflow 3 and structlog: `ts [info     ] msg`; plain
// `ERROR:root:…` and `level=error`.
const LEVEL =
  /(?:\}\s+|\[\s*|^|\s|level=)(CRITICAL|FATAL|ERROR|WARNING|WARN|INFO|DEBUG)(?:\s+-|\s*\]|:|\s|$)|(?:\[\s*|level=)(critical|fatal|error|warning|warn|info|debug)\b/;

export function levelOf(text: string): Level | undefined {
  // Only the line's head: a message that mentions "error" is not an error line.
  const m = LEVEL.exec(text.length > 160 ? text.slice(0, 160) : text);
  if (!m) return undefined;
  const l = (m[1] ?? m[2]!).toLowerCase();
  if (l === 'fatal') return 'critical';
  if (l === 'warn') return 'warning';
  return l as Level;
}

const GROUP = /::group::(.*)$/;
const END_GROUP = '::endgroup::';
const TRACEBACK = 'Traceback (most recent call last):';

/** Recomputes every held line's decoration. */
export function decorate(lines: readonly LogLine[]): void {
  const open: LogLine[] = [];
  let tb: 'none' | 'in' | 'after' = 'none';
  for (const line of lines) {
    const text = line.text;
    const d: LineDeco = {};
    const level = levelOf(text);
    if (level) d.level = level;
    const parent = open.at(-1);
    if (parent) d.parent = parent;
    const g = text.includes('::group::') ? GROUP.exec(text) : null;
    if (g) {
      d.groupTitle = g[1]!.trim() || 'group';
      open.push(line);
    } else if (text.includes(END_GROUP)) {
      d.groupEnd = true;
      const header = open.pop();
      if (header) decos.get(header)!.closed = true;
    }
    if (text.includes(TRACEBACK)) {
      d.traceback = 'start';
      tb = 'in';
    } else if (tb === 'in') {
      if (/^\s/.test(text) || text === '') d.traceback = 'body';
      else {
        d.traceback = 'end';
        tb = 'after';
      }
    } else if (tb === 'after' && /^(During handling|The above exception)/.test(text)) {
      d.traceback = 'body';
      tb = 'in';
    } else tb = 'none';
    decos.set(line, d);
  }
}

/**
 * Whether a line is hidden by a folded group: a closed group is folded unless the reader opened
 * it (`expanded`), an open one (still being written) is shown.
 */
export function isHidden(line: LogLine, expanded: ReadonlySet<number>): boolean {
  const d = decoOf(line);
  if (d.groupEnd) return true;
  for (let p = d.parent; p; p = decoOf(p).parent) {
    if (decoOf(p).closed && !expanded.has(p.offset)) return true;
  }
  return false;
}

export function isFolded(header: LogLine, expanded: ReadonlySet<number>): boolean {
  return Boolean(decoOf(header).closed) && !expanded.has(header.offset);
}
