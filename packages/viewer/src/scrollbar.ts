import { h } from './dom.js';

/** Tallest spacer: browsers cap element heights (Chromium near 2^25 px), and drags need no more. */
const MAX_SPACER_PX = 4_000_000;

/**
 * A native scrollbar beside the log that stands for byte offsets: its position is the fraction
 * of the log above the screen. Dragging it or clicking its track jumps there; the view moves it
 * back when the reader scrolls the lines.
 */
export class Scrollbar {
  readonly element: HTMLElement;
  readonly #spacer: HTMLElement;
  /** The scrollTop the view set last: its scroll event is an echo, not the reader's move. */
  #setByView: number | undefined;
  #pending: number | undefined;

  constructor(onJump: (fraction: number) => void) {
    this.#spacer = h('div', { class: 'log-scrollbar-spacer' });
    this.element = h('div', { class: 'log-scrollbar', 'aria-hidden': 'true' }, this.#spacer);
    this.element.addEventListener('scroll', () => {
      const top = this.element.scrollTop;
      if (this.#setByView !== undefined && Math.abs(top - this.#setByView) < 2) {
        this.#setByView = undefined;
        return;
      }
      this.#setByView = undefined;
      const range = this.element.scrollHeight - this.element.clientHeight;
      // One jump per frame however fast the thumb is dragged.
      if (this.#pending !== undefined) cancelAnimationFrame(this.#pending);
      this.#pending = requestAnimationFrame(() => {
        this.#pending = undefined;
        onJump(range > 0 ? top / range : 0);
      });
    });
  }

  /** Sizes the track for content about `contentPx` tall and puts the thumb at `fraction`. */
  update(contentPx: number, viewPx: number, fraction: number): void {
    const height = Math.max(viewPx, Math.min(MAX_SPACER_PX, Math.round(contentPx)));
    this.#spacer.style.height = `${height}px`;
    this.element.classList.toggle('idle', height <= viewPx);
    const range = this.element.scrollHeight - this.element.clientHeight;
    const top = Math.round(Math.max(0, Math.min(1, fraction)) * range);
    if (Math.abs(this.element.scrollTop - top) >= 1) {
      this.#setByView = top;
      this.element.scrollTop = top;
    }
  }
}
