/**
 * The page's URLs (issue 13's contract), parsed and built. Path segments are URL-encoded: run
 * ids hold `:` and `+`.
 */

export type Route =
  | { view: 'dags' }
  | { view: 'runs'; dagId: string }
  | { view: 'tasks'; dagId: string; runId: string }
  | { view: 'attempts'; dagId: string; runId: string; taskId: string; mapIndex: number | undefined }
  | {
      view: 'log';
      dagId: string;
      runId: string;
      taskId: string;
      mapIndex: number;
      tryNumber: number;
    };

const e = encodeURIComponent;

export function parseRoute(url: URL): Route | undefined {
  const parts = url.pathname.split('/').filter(Boolean);
  let d: string[];
  try {
    d = parts.map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const mapText = url.searchParams.get('mapIndex');
  const mapIndex = mapText !== null && /^-?\d+$/.test(mapText) ? Number(mapText) : undefined;
  if (d.length === 0) return { view: 'dags' };
  if (d[0] !== 'dags' || d.length < 2) return undefined;
  const [, dagId, runs, runId, tasks, taskId, attempts, tryText] = d as string[] & {
    length: number;
  };
  if (d.length === 2) return { view: 'runs', dagId: dagId! };
  if (runs !== 'runs' || runId === undefined) return undefined;
  if (d.length === 4) return { view: 'tasks', dagId: dagId!, runId };
  if (tasks !== 'tasks' || taskId === undefined) return undefined;
  if (d.length === 6) return { view: 'attempts', dagId: dagId!, runId, taskId, mapIndex };
  if (attempts !== 'attempts' || d.length !== 8 || !/^\d+$/.test(tryText ?? '')) return undefined;
  return {
    view: 'log',
    dagId: dagId!,
    runId,
    taskId,
    mapIndex: mapIndex ?? -1,
    tryNumber: Number(tryText),
  };
}

export function dagsUrl(): string {
  return '/';
}
export function runsUrl(dagId: string): string {
  return `/dags/${e(dagId)}`;
}
export function tasksUrl(dagId: string, runId: string): string {
  return `${runsUrl(dagId)}/runs/${e(runId)}`;
}
export function attemptsUrl(dagId: string, runId: string, taskId: string, mapIndex?: number) {
  const q = mapIndex !== undefined && mapIndex >= 0 ? `?mapIndex=${mapIndex}` : '';
  return `${tasksUrl(dagId, runId)}/tasks/${e(taskId)}${q}`;
}
export function logUrl(a: {
  dagId: string;
  runId: string;
  taskId: string;
  mapIndex: number;
  tryNumber: number;
}): string {
  const q = a.mapIndex >= 0 ? `?mapIndex=${a.mapIndex}` : '';
  return `${tasksUrl(a.dagId, a.runId)}/tasks/${e(a.taskId)}/attempts/${a.tryNumber}${q}`;
}

/** Goes to `href` in this tab without a reload; `onNavigate` renders the new route. */
export function navigate(href: string, replace = false): void {
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  dispatchEvent(new Event('tasklog:navigate'));
}

/**
 * Same-origin links with `data-route` open through the History API; a modified click (new tab,
 * download) is left to the browser.
 */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
    const a = (ev.target as Element).closest?.('a[data-route]');
    if (!(a instanceof HTMLAnchorElement)) return;
    ev.preventDefault();
    navigate(a.getAttribute('href') ?? '/');
  });
}
