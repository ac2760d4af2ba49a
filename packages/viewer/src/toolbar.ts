import type { AttemptRef, AttemptRow } from './api.js';
import { formatBytes, h } from './dom.js';
import { attemptsUrl, dagsUrl, runsUrl, tasksUrl } from './router.js';

export interface ToolbarActions {
  onTry(tryNumber: number): void;
  onWrap(wrap: boolean): void;
  onLocalTime(local: boolean): void;
  onGoto(text: string): void;
  onSearch(): void;
  onErrors(): void;
  onDownload(): Promise<void>;
}

const WRAP_KEY = 'tasklog.wrap';
const TIME_KEY = 'tasklog.localTime';

/** The attempt page's header: where the log is, which try, and what can be done with it. */
export class Toolbar {
  readonly element: HTMLElement;
  readonly #status: HTMLElement;
  readonly #live: HTMLElement;

  constructor(ref: AttemptRef, attempts: AttemptRow[], on: ToolbarActions) {
    const tries = h('select', { class: 'try-select', 'aria-label': 'Attempt' });
    const numbers = new Set(attempts.map((a) => a.tryNumber));
    numbers.add(ref.tryNumber);
    for (const n of [...numbers].sort((a, b) => b - a)) {
      const row = attempts.find((a) => a.tryNumber === n);
      const label = `try ${n}${row ? ` · ${row.airflowState ?? row.state}` : ''}`;
      tries.append(h('option', { value: n, selected: n === ref.tryNumber }, label));
    }
    tries.addEventListener('change', () => on.onTry(Number(tries.value)));

    const wrap = toggle('Wrap', WRAP_KEY, on.onWrap);
    const local = toggle('Local time', TIME_KEY, on.onLocalTime);
    const goto = h('input', {
      class: 'goto',
      placeholder: 'Go to 50% or byte',
      'aria-label': 'Go to a percentage or a byte offset',
      size: 14,
    });
    goto.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter') on.onGoto(goto.value);
    });
    const downloadButton = h('button', { type: 'button', class: 'download' }, 'Download');
    downloadButton.addEventListener('click', () => {
      downloadButton.disabled = true;
      on.onDownload().finally(() => {
        downloadButton.disabled = false;
      });
    });
    this.#status = h('span', { class: 'log-status' });
    this.#live = h('span', { class: 'live-state' });
    const crumbs = h(
      'nav',
      { class: 'crumbs', 'aria-label': 'Breadcrumbs' },
      h('a', { href: dagsUrl(), 'data-route': true }, 'DAGs'),
      ' / ',
      h('a', { href: runsUrl(ref.dagId), 'data-route': true }, ref.dagId),
      ' / ',
      h('a', { href: tasksUrl(ref.dagId, ref.runId), 'data-route': true }, ref.runId),
      ' / ',
      h(
        'a',
        { href: attemptsUrl(ref.dagId, ref.runId, ref.taskId, ref.mapIndex), 'data-route': true },
        ref.taskId + (ref.mapIndex >= 0 ? ` [${ref.mapIndex}]` : ''),
      ),
    );
    this.element = h(
      'header',
      { class: 'toolbar' },
      crumbs,
      h(
        'div',
        { class: 'tools' },
        tries,
        this.#status,
        this.#live,
        h('button', { type: 'button', class: 'search-open', onclick: on.onSearch }, 'Search'),
        h('button', { type: 'button', class: 'errors', onclick: on.onErrors }, 'Errors'),
        goto,
        wrap.label,
        local.label,
        downloadButton,
      ),
    );
    // Saved choices apply from the start.
    queueMicrotask(() => {
      if (wrap.input.checked) on.onWrap(true);
      if (local.input.checked) on.onLocalTime(true);
    });
  }

  setStatus(state: string, size: number): void {
    this.#status.replaceChildren(
      h('span', { class: `badge state-${state}` }, state),
      ` ${formatBytes(size)}`,
    );
  }

  setLive(state: 'live' | 'reconnecting'): void {
    this.#live.textContent = state === 'live' ? '● live' : '○ reconnecting…';
    this.#live.className = `live-state ${state}`;
  }
}

function toggle(text: string, key: string, on: (checked: boolean) => void) {
  const input = h('input', { type: 'checkbox', checked: localStorage.getItem(key) === '1' });
  input.addEventListener('change', () => {
    localStorage.setItem(key, input.checked ? '1' : '0');
    on(input.checked);
  });
  return { input, label: h('label', { class: 'toggle' }, input, ` ${text}`) };
}
