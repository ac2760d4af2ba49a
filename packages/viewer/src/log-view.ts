import type { AttemptRef } from './api.js';
import { decoOf, decorate, isHidden } from './decorate.js';
import { h } from './dom.js';
import { type LinesRead, readLines } from './line-reader.js';
import type { LogLine } from './log-lines.js';
import { LogWindow } from './log-window.js';
import { renderLine } from './render-line.js';
import { Scrollbar } from './scrollbar.js';

/** Bytes read for a first screen or a jump: before and after the target. */
const JUMP_BEFORE = 32 * 1024;
const JUMP_AFTER = 96 * 1024;
/** Bytes read when the reader nears an edge of the window. */
const EXTEND = 256 * 1024;
/** Lines kept loaded beyond the screen before reading more. */
const NEAR_EDGE = 300;
/** Pixels rendered above and below the screen. */
const MARGIN_PX = 600;
/** Live lines kept for a jump back to the end while following (the archive may lag behind). */
const LIVE_TAIL_BYTES = 512 * 1024;

/** The performance mark set when a log's first lines are on screen. */
export const FIRST_LINES_MARK = 'tasklog:first-lines';

export interface LogViewEvents {
  /** A line's gutter was clicked: its byte offset. */
  onPermalink(offset: number): void;
  /** The view moved or grew (the page updates its "new lines" pill). */
  onChange(): void;
  /** A read failed. */
  onError(err: unknown): void;
}

/**
 * The virtualised log: the scroll position is a byte offset, not a pixel one. The page holds a
 * window of lines (`LogWindow`), keeps an anchor — the line at the top of the screen and how many
 * pixels of it are scrolled off — renders only the lines on screen plus a margin, and reads more
 * bytes with `Range` as the anchor nears an edge. A jump (End, a percentage, a permalink, a search
 * result) replaces the window with the bytes around the target, so a 1 GiB log costs what a
 * screen of it costs. The scrollbar beside it maps its position to a byte offset.
 */
export class LogView {
  readonly element: HTMLElement;
  readonly win = new LogWindow();
  wrap = false;
  localTime = false;
  target: number | undefined;
  readonly expanded = new Set<number>();
  #anchor = 0;
  #px = 0;
  #lineHeight = 18;
  #cache = new WeakMap<LogLine, HTMLElement>();
  readonly #viewport: HTMLElement;
  readonly #content: HTMLElement;
  readonly #scrollbar: Scrollbar;
  #busyForward = false;
  #busyBackward = false;
  #retryAt = 0;
  #liveTail: LogLine[] = [];
  #liveTailBytes = 0;
  #jumps = new AbortController();

  constructor(
    readonly ref: AttemptRef,
    readonly events: LogViewEvents,
  ) {
    this.#content = h('div', { class: 'log-lines', role: 'log', 'aria-live': 'off' });
    this.#viewport = h('div', { class: 'log-viewport', tabindex: 0 }, this.#content);
    this.#scrollbar = new Scrollbar((f) => void this.jumpFraction(f));
    this.element = h('div', { class: 'log-view' }, this.#viewport, this.#scrollbar.element);
    this.#viewport.addEventListener('wheel', (ev) => this.#onWheel(ev), { passive: false });
    // Content below the screen is overflow a text selection may scroll into view: the viewport
    // itself never stays scrolled, the move becomes a move of the anchor.
    this.#viewport.addEventListener('scroll', () => {
      const dy = this.#viewport.scrollTop;
      if (dy === 0) return;
      this.#viewport.scrollTop = 0;
      this.scrollBy(dy);
    });
    this.#content.addEventListener('click', (ev) => this.#onClick(ev));
    new ResizeObserver(() => {
      this.#cache = new WeakMap();
      for (const l of this.win.lines) l.h = undefined;
      this.render();
    }).observe(this.#viewport);
  }

  focus(): void {
    this.#viewport.focus({ preventScroll: true });
  }

  /** Opens the log of `size` bytes at `offset`, or at its end. */
  async open(size: number, complete: boolean, at: number | 'end'): Promise<void> {
    this.win.size = size;
    this.win.complete = complete;
    if (at === 'end') await this.toEnd();
    else await this.jumpTo(at, at > 0);
  }

  get lineHeight(): number {
    return this.#lineHeight;
  }

  /** Byte offset of the line at the top of the screen. */
  get topOffset(): number {
    return this.win.lines[this.#anchor]?.offset ?? this.win.start;
  }

  /** Whether the last line of the log (as known) is on screen. */
  atBottom(): boolean {
    if (!this.win.atLogEnd) return false;
    return this.#heightBelow(this.#viewport.clientHeight + 2) <= this.#viewport.clientHeight + 2;
  }

  scrollBy(dy: number): void {
    this.#px += dy;
    this.render();
  }

  /** Puts the line holding `offset` near the top; `mark` highlights it. */
  async jumpTo(offset: number, mark: boolean): Promise<void> {
    const at = Math.max(0, Math.min(offset, Math.max(0, this.win.size - 1)));
    let i = this.win.indexAt(at);
    if (i === -1) {
      const read = await this.#read(Math.max(0, at - JUMP_BEFORE), at + JUMP_AFTER);
      if (!read) return;
      this.win.replace(read.lines, Math.max(0, at - JUMP_BEFORE));
      decorate(this.win.lines);
      i = Math.max(0, this.win.indexAt(at));
      if (this.win.lines.length > 0 && at >= this.win.end) i = this.win.lines.length - 1;
    }
    const line = this.win.lines[i];
    if (mark && line) this.target = line.offset;
    if (line) this.#unfold(line);
    this.#anchor = i;
    // A little of what comes before stays in view: a target at the very top is easy to miss.
    this.#px = mark ? -2 * this.#lineHeight : 0;
    this.#cache = new WeakMap();
    this.render();
  }

  async jumpFraction(f: number): Promise<void> {
    if (f >= 0.999) return this.toEnd();
    if (f <= 0.001) return this.jumpTo(0, false);
    return this.jumpTo(Math.floor(f * this.win.size), false);
  }

  async toEnd(): Promise<void> {
    const tail = this.#liveTail;
    if (!this.win.atLogEnd) {
      if (tail.length > 0 && tail.at(-1)!.end >= this.win.size) {
        // Following: the newest lines may not be in the archive yet; the live tail has them.
        this.win.replace([...tail], tail[0]!.offset);
      } else {
        const from = Math.max(0, this.win.size - JUMP_BEFORE - JUMP_AFTER);
        const read = await this.#read(from, this.win.size);
        if (!read) return;
        this.win.replace(read.lines, from);
      }
      decorate(this.win.lines);
    }
    this.#anchor = Math.max(0, this.win.lines.length - 1);
    this.#px = 0;
    this.render();
  }

  /**
   * Lines that arrived live, starting at `lines[0].offset`. Shown when the window reaches that
   * far; otherwise only kept in the live tail. Returns whether they were shown.
   */
  appendLive(lines: LogLine[]): boolean {
    if (lines.length === 0) return false;
    for (const l of lines) {
      this.#liveTail.push(l);
      this.#liveTailBytes += l.end - l.offset;
    }
    while (this.#liveTailBytes > LIVE_TAIL_BYTES && this.#liveTail.length > 1) {
      const gone = this.#liveTail.shift()!;
      this.#liveTailBytes -= gone.end - gone.offset;
    }
    const stick = this.atBottom();
    const joins = this.win.end === lines[0]!.offset && this.win.atLogEnd;
    this.win.size = Math.max(this.win.size, lines.at(-1)!.end);
    if (!joins) {
      this.events.onChange();
      return false;
    }
    this.win.append(lines);
    this.#anchor -= this.win.trim(this.#anchor);
    decorate(this.win.lines);
    if (stick) {
      this.#anchor = this.win.lines.length - 1;
      this.#px = 0;
    }
    this.render();
    return true;
  }

  /** The log ended at `size` bytes (or, `complete` false, was abandoned there). */
  setComplete(size: number, complete: boolean): void {
    this.win.size = Math.max(size, this.win.end);
    this.win.complete = complete || this.win.complete;
    this.render();
  }

  setWrap(wrap: boolean): void {
    this.wrap = wrap;
    this.element.classList.toggle('wrap', wrap);
    this.#cache = new WeakMap();
    for (const l of this.win.lines) l.h = undefined;
    this.render();
  }

  setLocalTime(local: boolean): void {
    this.localTime = local;
    this.#cache = new WeakMap();
    this.render();
  }

  toggleFold(offset: number): void {
    if (this.expanded.has(offset)) this.expanded.delete(offset);
    else this.expanded.add(offset);
    this.#cache = new WeakMap();
    this.render();
  }

  /** Draws the lines on screen; reads more when the anchor nears an edge of the window. */
  render(): void {
    const L = this.win.lines;
    this.#measureLineHeight();
    if (L.length === 0) {
      this.#content.replaceChildren(h('div', { class: 'log-empty' }, 'No log lines yet.'));
      this.#content.style.transform = '';
      this.#syncScrollbar();
      return;
    }
    this.#normalize();
    const vh = this.#viewport.clientHeight;
    const up: number[] = [];
    let above = 0;
    for (let i = this.#anchor - 1; i >= 0 && above < MARGIN_PX; i--) {
      if (this.#hidden(L[i]!)) continue;
      up.push(i);
      above += this.#h(L[i]!);
    }
    up.reverse();
    const down: number[] = [];
    let below = 0;
    for (let i = this.#anchor; i < L.length && below < vh + this.#px + MARGIN_PX; i++) {
      if (this.#hidden(L[i]!)) continue;
      down.push(i);
      below += this.#h(L[i]!);
    }
    const shown = [...up, ...down].map((i) => L[i]!);
    const nodes = shown.map((l) => this.#elementOf(l));
    this.#content.replaceChildren(...nodes);
    nodes.forEach((n, k) => {
      shown[k]!.h = n.offsetHeight;
    });
    let aboveReal = 0;
    for (const i of up) aboveReal += L[i]!.h ?? 0;
    this.#content.style.transform = `translateY(${-(aboveReal + this.#px)}px)`;
    // Time to first screen, for tests and benchmarks (Chromium's performance API).
    if (performance.getEntriesByName(FIRST_LINES_MARK).length === 0) {
      performance.mark(FIRST_LINES_MARK);
    }
    this.#syncScrollbar();
    this.#ensureLoaded();
    this.events.onChange();
  }

  #h(line: LogLine): number {
    return line.h ?? this.#lineHeight;
  }

  #hidden(line: LogLine): boolean {
    return isHidden(line, this.expanded);
  }

  /** Moves the anchor to the line under the top of the screen, kept within the log's ends. */
  #normalize(): void {
    const L = this.win.lines;
    const hOf = (i: number) => (this.#hidden(L[i]!) ? 0 : this.#h(L[i]!));
    this.#anchor = Math.max(0, Math.min(this.#anchor, L.length - 1));
    while (this.#anchor < L.length - 1 && this.#px >= hOf(this.#anchor)) {
      this.#px -= hOf(this.#anchor);
      this.#anchor++;
    }
    const up = () => {
      while (this.#px < 0 && this.#anchor > 0) {
        this.#anchor--;
        this.#px += hOf(this.#anchor);
      }
      if (this.#px < 0) this.#px = 0;
    };
    up();
    if (this.win.atLogEnd) {
      const vh = this.#viewport.clientHeight;
      const below = this.#heightBelow(vh);
      if (below < vh) {
        this.#px -= vh - below;
        up();
      }
    }
  }

  /** Pixels from the top of the screen to the end of the held lines, counted up to `limit`. */
  #heightBelow(limit: number): number {
    const L = this.win.lines;
    let below = -this.#px;
    for (let i = this.#anchor; i < L.length && below <= limit; i++) {
      if (!this.#hidden(L[i]!)) below += this.#h(L[i]!);
    }
    return below;
  }

  #elementOf(line: LogLine): HTMLElement {
    let el = this.#cache.get(line);
    if (!el) {
      el = renderLine(line, {
        localTime: this.localTime,
        expanded: this.expanded,
        target: this.target,
      });
      this.#cache.set(line, el);
    }
    return el;
  }

  #measureLineHeight(): void {
    const probe = this.#content.querySelector<HTMLElement>('.line:not(.group-header)');
    if (probe && !this.wrap && probe.offsetHeight > 0) this.#lineHeight = probe.offsetHeight;
  }

  #unfold(line: LogLine): void {
    // A target inside a folded group opens it (and the groups around that one).
    for (let p = decoOf(line).parent; p; p = decoOf(p).parent) this.expanded.add(p.offset);
  }

  #onWheel(ev: WheelEvent): void {
    if (Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) return;
    ev.preventDefault();
    const unit =
      ev.deltaMode === 1 ? this.#lineHeight : ev.deltaMode === 2 ? this.#viewport.clientHeight : 1;
    this.scrollBy(ev.deltaY * unit);
  }

  #onClick(ev: MouseEvent): void {
    const target = ev.target as Element;
    const fold = target.closest('[data-fold]');
    if (fold) {
      this.toggleFold(Number(fold.getAttribute('data-fold')));
      return;
    }
    const gutter = target.closest('a.gutter');
    if (gutter) {
      ev.preventDefault();
      const offset = Number(gutter.getAttribute('data-o'));
      this.target = offset;
      this.#cache = new WeakMap();
      this.render();
      this.events.onPermalink(offset);
    }
  }

  #syncScrollbar(): void {
    const L = this.win.lines;
    const bytesPerLine = L.length > 1 ? (this.win.end - this.win.start) / L.length : 80;
    const fraction = this.atBottom() ? 1 : this.win.size > 0 ? this.topOffset / this.win.size : 0;
    this.#scrollbar.update(
      (this.win.size / Math.max(1, bytesPerLine)) * this.#lineHeight,
      this.#viewport.clientHeight,
      fraction,
    );
  }

  /** Reads more lines when the anchor is near an edge of the window. */
  #ensureLoaded(): void {
    if (Date.now() < this.#retryAt) return;
    const L = this.win.lines;
    if (!this.#busyForward && !this.win.atLogEnd && L.length - this.#anchor < NEAR_EDGE) {
      void this.#extendForward();
    }
    if (!this.#busyBackward && this.win.start > 0 && this.#anchor < NEAR_EDGE) {
      void this.#extendBackward();
    }
  }

  async #extendForward(): Promise<void> {
    this.#busyForward = true;
    const { generation, end: from } = this.win;
    const last = this.win.lines.at(-1);
    const to = Math.min(from + EXTEND, this.win.size);
    try {
      const read = await readLines(
        this.ref,
        from,
        to,
        last?.openEnd ? 'continue' : 'line',
        to >= this.win.size && this.win.complete,
      );
      if (generation !== this.win.generation || this.win.end !== from) return;
      if (read.total !== undefined) this.win.size = read.total;
      if (read.lines.length === 0) {
        // A running attempt's archive lags behind what the page knows: try again shortly.
        this.#retryAt = Date.now() + 1000;
        return;
      }
      this.win.append(read.lines);
      this.#anchor -= this.win.trim(this.#anchor);
      decorate(this.win.lines);
    } catch (err) {
      this.#retryAt = Date.now() + 2000;
      this.events.onError(err);
      return;
    } finally {
      this.#busyForward = false;
    }
    this.render();
  }

  async #extendBackward(): Promise<void> {
    this.#busyBackward = true;
    const { generation, start: to } = this.win;
    const first = this.win.lines[0];
    const from = Math.max(0, to - EXTEND);
    try {
      const read = await readLines(this.ref, from, to, from === 0 ? 'line' : 'skip', true);
      if (generation !== this.win.generation || this.win.start !== to) return;
      const last = read.lines.at(-1);
      // The bytes just before a piece are the same long line: the read's last line goes on.
      if (last && first?.openStart) last.openEnd = true;
      if (read.lines.length === 0) {
        this.#retryAt = Date.now() + 1000;
        return;
      }
      this.#anchor += this.win.prepend(read.lines);
      this.win.trim(this.#anchor);
      decorate(this.win.lines);
    } catch (err) {
      this.#retryAt = Date.now() + 2000;
      this.events.onError(err);
      return;
    } finally {
      this.#busyBackward = false;
    }
    this.render();
  }

  /** Reads whole lines of [from, to) for a new window; the last jump wins. */
  async #read(from: number, to: number): Promise<LinesRead | undefined> {
    this.#jumps.abort();
    const jumps = new AbortController();
    this.#jumps = jumps;
    const end = Math.min(to, this.win.size);
    try {
      const read = await readLines(
        this.ref,
        from,
        end,
        from === 0 ? 'line' : 'skip',
        end >= this.win.size && this.win.complete,
        jumps.signal,
      );
      if (jumps.signal.aborted) return undefined;
      if (read.total !== undefined) this.win.size = read.total;
      return read;
    } catch (err) {
      if (jumps.signal.aborted) return undefined;
      this.events.onError(err);
      return undefined;
    }
  }
}
