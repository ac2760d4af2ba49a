import { type AnsiStyle, hasEscape, paletteRgb, parseAnsi } from './ansi.js';
import { decoOf, isFolded } from './decorate.js';
import { h } from './dom.js';
import type { LogLine } from './log-lines.js';

export interface LineOptions {
  /** Show leading timestamps in the reader's local time instead of as written. */
  localTime: boolean;
  /** Group headers the reader unfolded, by byte offset. */
  expanded: ReadonlySet<number>;
  /** The line a permalink or search result points at. */
  target: number | undefined;
}

// `[2026-01-01T00:00:00.123+0000]` (Airflow) or a bare ISO time at the start of the line.
const TIMESTAMP =
  /^(\[?)(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)(\]?)/;

/** The line's element: its gutter (line number or byte offset) and its styled text. */
export function renderLine(line: LogLine, opts: LineOptions): HTMLElement {
  const d = decoOf(line);
  const classes = ['line'];
  if (d.level) classes.push(`lvl-${d.level}`);
  if (d.traceback) classes.push('tb', `tb-${d.traceback}`);
  if (line.offset === opts.target) classes.push('target');
  if (line.openStart) classes.push('piece-start');
  if (line.openEnd) classes.push('piece-end');
  const label = line.no !== undefined ? String(line.no) : `@${line.offset}`;
  const gutter = h(
    'a',
    {
      class: 'gutter',
      href: `#o=${line.offset}`,
      title: `byte ${line.offset} — click to copy a link to this line`,
      'data-o': line.offset,
    },
    label,
  );
  const text = h('span', { class: 'text' });
  if (d.groupTitle !== undefined) {
    classes.push('group-header');
    const folded = isFolded(line, opts.expanded);
    text.append(
      h(
        'button',
        { class: 'fold', 'data-fold': line.offset, 'aria-expanded': String(!folded) },
        folded ? '▸ ' : '▾ ',
        d.groupTitle,
      ),
    );
  } else {
    appendText(text, line.text, opts.localTime);
  }
  return h('div', { class: classes.join(' '), 'data-o': line.offset }, gutter, text);
}

function appendText(into: HTMLElement, raw: string, localTime: boolean): void {
  let rest = raw;
  const ts = TIMESTAMP.exec(raw);
  if (ts) {
    const [whole, open, stamp, close] = ts as unknown as [string, string, string, string];
    const shown = localTime ? localTimeOf(stamp) : undefined;
    into.append(
      h('span', { class: 'ts', title: stamp }, shown ? `${open}${shown}${close}` : whole),
    );
    rest = raw.slice(whole.length);
  }
  if (!hasEscape(rest)) {
    into.append(rest);
    return;
  }
  for (const run of parseAnsi(rest)) into.append(styled(run.text, run.style));
}

function styled(text: string, s: AnsiStyle): Node {
  const keys = Object.keys(s).filter((k) => s[k as keyof AnsiStyle] !== false);
  if (keys.length === 0) return document.createTextNode(text);
  const span = h('span', {}, text);
  let fg = s.fg;
  let bg = s.bg;
  if (s.inverse) [fg, bg] = [bg ?? 'var(--bg)', fg ?? 'var(--fg)'];
  // The 16 base colours follow the theme (classes); the others are exact (CSSOM, which the
  // page's CSP allows, unlike style attributes).
  if (typeof fg === 'number' && fg < 16) span.classList.add(`fg-${fg}`);
  else if (fg !== undefined) span.style.color = typeof fg === 'number' ? paletteRgb(fg) : fg;
  if (typeof bg === 'number' && bg < 16) span.classList.add(`bg-${bg}`);
  else if (bg !== undefined)
    span.style.backgroundColor = typeof bg === 'number' ? paletteRgb(bg) : bg;
  if (s.bold) span.classList.add('sgr-bold');
  if (s.dim) span.classList.add('sgr-dim');
  if (s.italic) span.classList.add('sgr-italic');
  if (s.underline) span.classList.add('sgr-underline');
  if (s.strike) span.classList.add('sgr-strike');
  return span;
}

/** `2026-01-01 01:00:00.123` in the reader's zone, or undefined when the stamp has no zone. */
export function localTimeOf(stamp: string): string | undefined {
  const iso = stamp
    .replace(' ', 'T')
    .replace(',', '.')
    .replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  if (!/(Z|[+-]\d\d:\d\d)$/.test(iso)) return undefined;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return undefined;
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`
  );
}
