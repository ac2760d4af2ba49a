import type { LogView } from './log-view.js';
import type { SearchPanel } from './search-panel.js';

/**
 * The log page's keys: j/k and arrows scroll a line, PageUp/PageDown and space a screen, g/G
 * and Home/End go to the ends, `/` searches, n/N step through the results, Esc closes.
 * Keys typed into a field are the field's, except Esc. Returns a function that unbinds them.
 */
export function bindKeys(t: { view: LogView; search: SearchPanel; close: () => void }): () => void {
  const { view, search } = t;
  const onKey = (ev: KeyboardEvent) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const inField = (ev.target as Element).closest?.('input, select, textarea');
    if (ev.key === 'Escape') {
      t.close();
      return;
    }
    if (inField) return;
    const screen = Math.max(view.lineHeight, view.element.clientHeight - 2 * view.lineHeight);
    const actions: Record<string, () => unknown> = {
      j: () => view.scrollBy(view.lineHeight),
      ArrowDown: () => view.scrollBy(view.lineHeight),
      k: () => view.scrollBy(-view.lineHeight),
      ArrowUp: () => view.scrollBy(-view.lineHeight),
      PageDown: () => view.scrollBy(screen),
      ' ': () => view.scrollBy(ev.shiftKey ? -screen : screen),
      PageUp: () => view.scrollBy(-screen),
      g: () => view.jumpTo(0, false),
      Home: () => view.jumpTo(0, false),
      G: () => view.toEnd(),
      End: () => view.toEnd(),
      '/': () => search.open(),
      n: () => search.step(1),
      N: () => search.step(-1),
    };
    const action = actions[ev.key];
    if (!action) return;
    ev.preventDefault();
    void action();
  };
  document.addEventListener('keydown', onKey);
  return () => document.removeEventListener('keydown', onKey);
}
