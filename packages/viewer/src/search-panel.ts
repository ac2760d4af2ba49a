import {
  type AttemptRef,
  apiFetch,
  logPath,
  mapQuery,
  type SearchAnswer,
  type SearchMatch,
} from './api.js';
import { h } from './dom.js';

/**
 * Search in the whole log, not only the lines on screen: the proxy scans the log's bytes and
 * answers byte offsets; the page lists them and jumps. A scan stops at a match limit or a time
 * budget (`done` false), and "search further" goes on from `scannedTo`.
 */
export class SearchPanel {
  readonly element: HTMLElement;
  readonly input: HTMLInputElement;
  readonly #regex: HTMLInputElement;
  readonly #case: HTMLInputElement;
  readonly #results: HTMLOListElement;
  readonly #status: HTMLElement;
  readonly #more: HTMLButtonElement;
  #matches: SearchMatch[] = [];
  #current = -1;
  #next: number | undefined;
  #abort = new AbortController();

  constructor(
    readonly ref: AttemptRef,
    readonly onJump: (match: SearchMatch) => void,
  ) {
    this.input = h('input', {
      type: 'search',
      class: 'search-input',
      placeholder: 'Search the whole log (/)',
      'aria-label': 'Search the log',
    });
    this.#regex = h('input', { type: 'checkbox', class: 'search-regex' });
    this.#case = h('input', { type: 'checkbox', class: 'search-case' });
    this.#results = h('ol', { class: 'search-results' });
    this.#status = h('div', { class: 'search-status', role: 'status' });
    this.#more = h(
      'button',
      { type: 'button', class: 'search-more', hidden: true },
      'Search further',
    );
    const form = h(
      'form',
      { class: 'search-form', role: 'search' },
      this.input,
      h('label', { title: 'JavaScript regular expression' }, this.#regex, ' regex'),
      h('label', {}, this.#case, ' match case'),
      h('button', { type: 'submit' }, 'Find'),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      void this.search(0);
    });
    this.#more.addEventListener('click', () => {
      if (this.#next !== undefined) void this.search(this.#next);
    });
    this.#results.addEventListener('click', (ev) => {
      const li = (ev.target as Element).closest('li[data-i]');
      if (li) this.select(Number(li.getAttribute('data-i')));
    });
    this.element = h(
      'section',
      { class: 'search-panel', hidden: true, 'aria-label': 'Search' },
      form,
      this.#status,
      this.#results,
      this.#more,
    );
  }

  open(): void {
    this.element.hidden = false;
    this.input.focus();
    this.input.select();
  }

  close(): void {
    this.#abort.abort();
    this.element.hidden = true;
  }

  /** Searches from byte `from` (0: a new search). */
  async search(from: number, q = this.input.value, regex = this.#regex.checked): Promise<void> {
    if (!q) return;
    this.element.hidden = false;
    this.input.value = q;
    this.#regex.checked = regex;
    this.#abort.abort();
    const abort = new AbortController();
    this.#abort = abort;
    if (from === 0) {
      this.#matches = [];
      this.#current = -1;
      this.#results.replaceChildren();
    }
    this.#more.hidden = true;
    this.#status.textContent = from === 0 ? 'Searching…' : `Searching from byte ${from}…`;
    const params = { q, regex, case: this.#case.checked, offset: from, limit: 200 };
    try {
      const res = await apiFetch(logPath(this.ref, '/search') + mapQuery(this.ref, params), {
        signal: abort.signal,
        headers: { Accept: 'application/json' },
      });
      const answer = (await res.json()) as SearchAnswer;
      if (abort.signal.aborted) return;
      const first = this.#matches.length;
      this.#matches.push(...answer.matches);
      this.#results.append(...answer.matches.map((m, k) => this.#row(m, first + k)));
      this.#next = answer.done ? undefined : answer.scannedTo;
      this.#more.hidden = answer.done;
      const pct = answer.size > 0 ? Math.round((answer.scannedTo / answer.size) * 100) : 100;
      this.#status.textContent =
        `${this.#matches.length} match${this.#matches.length === 1 ? '' : 'es'}` +
        (answer.done
          ? ' in the whole log'
          : ` in the first ${pct}% (stopped: ${answer.stopped ?? 'limit'})`);
      if (first === 0 && this.#matches.length > 0) this.select(0);
    } catch (err) {
      if (abort.signal.aborted) return;
      this.#status.textContent = `Search failed: ${(err as Error).message}`;
    }
  }

  /** Moves to the next (1) or previous (-1) match. */
  step(direction: 1 | -1): void {
    if (this.#matches.length === 0) return;
    const n = this.#matches.length;
    this.select((this.#current + direction + n) % n);
  }

  select(i: number): void {
    const match = this.#matches[i];
    if (!match) return;
    this.#results.querySelector('.current')?.classList.remove('current');
    const li = this.#results.querySelector(`li[data-i="${i}"]`);
    li?.classList.add('current');
    li?.scrollIntoView({ block: 'nearest' });
    this.#current = i;
    this.onJump(match);
  }

  #row(m: SearchMatch, i: number): HTMLElement {
    return h(
      'li',
      { 'data-i': i, 'data-o': m.lineOffset, tabindex: -1 },
      h('span', { class: 'search-offset' }, `@${m.lineOffset}`),
      h('span', { class: 'search-line' }, m.line),
    );
  }
}
