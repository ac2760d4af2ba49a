/**
 * ANSI escape sequences in a log line, parsed into styled runs of text. Only SGR (`ESC[…m`)
 * changes the style; every other escape (cursor moves, OSC titles and links) is dropped, so no
 * raw escape is ever shown. The style starts fresh on each line: a line must render the same
 * wherever the viewer opened the log, without reading the lines before it.
 */

/** A colour: 0–255 from the xterm palette, or an `rgb()` for 24-bit colour. */
export type AnsiColor = number | string;

export interface AnsiStyle {
  fg?: AnsiColor;
  bg?: AnsiColor;
  bold?: boolean;
  dim?: boolean;
  italic?: boolean;
  underline?: boolean;
  inverse?: boolean;
  strike?: boolean;
}

export interface AnsiRun {
  text: string;
  style: AnsiStyle;
}

// CSI (ESC [ params final), OSC (ESC ] … BEL or ESC \), and two-byte escapes.
const ESCAPE = /\x1b(?:\[([0-9;:?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;

/** Whether the text holds an escape at all (most lines do not: they skip the parser). */
export function hasEscape(text: string): boolean {
  return text.includes('\x1b');
}

export function parseAnsi(text: string): AnsiRun[] {
  const runs: AnsiRun[] = [];
  let style: AnsiStyle = {};
  let last = 0;
  ESCAPE.lastIndex = 0;
  for (let m = ESCAPE.exec(text); m; m = ESCAPE.exec(text)) {
    if (m.index > last) runs.push({ text: text.slice(last, m.index), style });
    last = m.index + m[0].length;
    if (m[2] === 'm') style = applySgr(style, m[1] ?? '');
  }
  if (last < text.length) runs.push({ text: text.slice(last), style });
  return runs;
}

/** The style after the SGR parameters `params` (`1;31`, `38;5;208`, `38;2;r;g;b`, `38:2::r:g:b`). */
export function applySgr(prev: AnsiStyle, params: string): AnsiStyle {
  const s: AnsiStyle = { ...prev };
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (c === 0) {
      for (const k of Object.keys(s)) delete s[k as keyof AnsiStyle];
    } else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 7) s.inverse = true;
    else if (c === 9) s.strike = true;
    else if (c === 22) {
      s.bold = false;
      s.dim = false;
    } else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c === 27) s.inverse = false;
    else if (c === 29) s.strike = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c === 39) delete s.fg;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c === 49) delete s.bg;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 38 || c === 48) {
      const mode = codes[i + 1];
      let color: AnsiColor | undefined;
      if (mode === 5 && codes[i + 2] !== undefined) {
        color = clamp(codes[i + 2]!);
        i += 2;
      } else if (mode === 2) {
        // `38:2::r:g:b` (ITU form, with an empty colour-space id) splits into one more field.
        const rgb = params.includes('::') ? codes.slice(i + 3, i + 6) : codes.slice(i + 2, i + 5);
        i += params.includes('::') ? 5 : 4;
        if (rgb.length === 3) color = `rgb(${rgb.map(clamp).join(', ')})`;
      } else break;
      if (color !== undefined) {
        if (c === 38) s.fg = color;
        else s.bg = color;
      }
    }
  }
  return s;
}

function clamp(n: number): number {
  return Number.isFinite(n) ? Math.max(0, Math.min(255, Math.trunc(n))) : 0;
}

/** The `rgb()` of an xterm 256-colour index from 16 up (0–15 are themed by the stylesheet). */
export function paletteRgb(index: number): string {
  if (index >= 232) {
    const v = 8 + (index - 232) * 10;
    return `rgb(${v}, ${v}, ${v})`;
  }
  const i = index - 16;
  const steps = [0, 95, 135, 175, 215, 255];
  return `rgb(${steps[Math.floor(i / 36)]}, ${steps[Math.floor(i / 6) % 6]}, ${steps[i % 6]})`;
}
