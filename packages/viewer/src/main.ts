import './styles.css';
import { ApiError, setToken } from './api.js';
import { mountAttempt, type Unmount } from './attempt-page.js';
import { mountBrowse } from './browse.js';
import { h } from './dom.js';
import { dagsUrl, interceptLinks, parseRoute } from './router.js';

/**
 * The viewer's entry: renders the route of the current URL, and again on every navigation.
 * A 401 anywhere asks for a bearer token and renders the route again with it.
 */
const app = document.getElementById('app')!;
let unmount: Unmount | undefined;
let rendering = 0;
/** Path and query last rendered: a change of the hash alone (a permalink) is the page's own. */
let rendered = '';

async function render(): Promise<void> {
  const mine = ++rendering;
  rendered = location.pathname + location.search;
  unmount?.();
  unmount = undefined;
  const route = parseRoute(new URL(location.href));
  app.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
  try {
    if (!route) throw new ApiError(404, 'NOT_FOUND', 'there is no page at this address');
    if (route.view === 'log') {
      const done = await mountAttempt(app, route);
      if (mine === rendering) unmount = done;
      else done();
    } else await mountBrowse(app, route);
  } catch (err) {
    if (mine !== rendering) return;
    showError(err);
  }
}

function showError(err: unknown): void {
  if (err instanceof ApiError && err.status === 401) {
    app.replaceChildren(tokenPrompt(err.message));
    return;
  }
  const text =
    err instanceof ApiError && err.status === 403
      ? 'You may not read this DAG’s logs.'
      : err instanceof ApiError && err.status === 404
        ? `Not found: ${err.message}.`
        : `Something went wrong: ${(err as Error).message}`;
  app.replaceChildren(
    h(
      'div',
      { class: 'page-error', role: 'alert' },
      h('p', {}, text),
      h('a', { href: dagsUrl(), 'data-route': true }, 'All DAGs'),
    ),
  );
}

/** Asks for the bearer token once per tab; it is kept in sessionStorage, not beyond the tab. */
function tokenPrompt(reason: string): HTMLElement {
  const input = h('input', {
    type: 'password',
    class: 'token-input',
    autocomplete: 'off',
    placeholder: 'tlk_…',
    'aria-label': 'Bearer token',
  });
  const form = h(
    'form',
    { class: 'token-prompt' },
    h('h1', {}, 'Sign in'),
    h('p', {}, `This server needs a bearer token (${reason}).`),
    input,
    h('button', { type: 'submit' }, 'Use token'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    setToken(input.value.trim() || undefined);
    void render();
  });
  queueMicrotask(() => input.focus());
  return form;
}

interceptLinks(document.body);
addEventListener('popstate', () => {
  if (location.pathname + location.search !== rendered) void render();
});
addEventListener('tasklog:navigate', () => void render());
void render();
