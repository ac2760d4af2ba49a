import { type AttemptRow, type DagRow, getJson, query, type RunRow, type TaskRow } from './api.js';
import { debounce, formatBytes, h, stateBadge, timeCell } from './dom.js';
import type { Route } from './router.js';
import { attemptsUrl, dagsUrl, logUrl, runsUrl, tasksUrl } from './router.js';

const PAGE = 100;

/** One level of the catalog as a list: how to fetch a page, and how a row looks. */
interface Level<Row> {
  title: string;
  crumbs: [string, string][];
  columns: string[];
  fetch(q: string, offset: number): Promise<{ rows: Row[]; next: number | null }>;
  cells(row: Row): [href: string, ...cells: (Node | string)[]];
}

/**
 * DAGs → runs → tasks → attempts, newest first, from the catalog. The filter asks the server
 * (`q`, debounced) so it covers every row, not only the page shown; "More" pages with `next`.
 */
export async function mountBrowse(root: HTMLElement, route: Route): Promise<void> {
  const level = levelOf(route);
  const filter = h('input', {
    type: 'search',
    class: 'filter',
    placeholder: 'Filter',
    'aria-label': 'Filter',
    value: new URLSearchParams(location.search).get('q') ?? '',
  });
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'more', hidden: true }, 'More');
  const status = h('p', { class: 'list-status', role: 'status' });
  const table = h(
    'table',
    { class: 'list' },
    h('thead', {}, h('tr', {}, ...level.columns.map((c) => h('th', {}, c)))),
    body,
  );
  const crumbs = h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' });
  level.crumbs.forEach(([text, href], i) => {
    if (i > 0) crumbs.append(' / ');
    crumbs.append(h('a', { href, 'data-route': true }, text));
  });
  root.replaceChildren(
    h(
      'div',
      { class: 'browse' },
      h('header', { class: 'toolbar' }, crumbs, h('div', { class: 'tools' }, filter)),
      h('h1', {}, level.title),
      table,
      status,
      more,
    ),
  );

  let next: number | null = 0;
  let generation = 0;
  const load = async (reset: boolean) => {
    const mine = ++generation;
    if (reset) next = 0;
    if (next === null) return;
    const page = await level.fetch(filter.value, next);
    if (mine !== generation) return;
    if (reset) body.replaceChildren();
    for (const row of page.rows) {
      const [href, first, ...rest] = level.cells(row);
      body.append(
        h(
          'tr',
          {},
          h('td', {}, h('a', { href, 'data-route': true }, first)),
          ...rest.map((c) => h('td', {}, c)),
        ),
      );
    }
    next = page.next;
    more.hidden = next === null;
    status.textContent = body.childElementCount === 0 ? 'Nothing here.' : '';
  };
  more.addEventListener('click', () => void load(false).catch(showError));
  const showError = (err: unknown) => {
    status.textContent = `Loading failed: ${(err as Error).message}`;
  };
  filter.addEventListener(
    'input',
    debounce(() => {
      const url = new URL(location.href);
      if (filter.value) url.searchParams.set('q', filter.value);
      else url.searchParams.delete('q');
      history.replaceState(null, '', url);
      void load(true).catch(showError);
    }, 250),
  );
  await load(true);
  filter.focus();
}

function levelOf(route: Route): Level<never> {
  const home: [string, string] = ['DAGs', dagsUrl()];
  const paged = (path: string, key: string) => async (q: string, offset: number) => {
    const page = await getJson<Record<string, unknown> & { next: number | null }>(
      path + query({ q, limit: PAGE, offset }),
    );
    return { rows: page[key] as never[], next: page.next };
  };
  const e = encodeURIComponent;
  switch (route.view) {
    case 'dags':
      return {
        title: 'DAGs',
        crumbs: [home],
        columns: ['DAG', 'attempts', 'running', 'last updated'],
        fetch: paged('/api/v1/dags', 'dags'),
        cells: (r: DagRow) => [
          runsUrl(r.dagId),
          r.dagId,
          String(r.attempts),
          running(r.running),
          timeCell(r.lastUpdatedAt),
        ],
      } as Level<DagRow> as Level<never>;
    case 'runs':
      return {
        title: `Runs of ${route.dagId}`,
        crumbs: [home, [route.dagId, runsUrl(route.dagId)]],
        columns: ['run', 'attempts', 'running', 'last updated'],
        fetch: paged(`/api/v1/dags/${e(route.dagId)}/runs`, 'runs'),
        cells: (r: RunRow) => [
          tasksUrl(route.dagId, r.runId),
          r.runId,
          String(r.attempts),
          running(r.running),
          timeCell(r.lastUpdatedAt),
        ],
      } as Level<RunRow> as Level<never>;
    case 'tasks': {
      const { dagId, runId } = route;
      return {
        title: `Tasks of ${runId}`,
        crumbs: [home, [dagId, runsUrl(dagId)], [runId, tasksUrl(dagId, runId)]],
        columns: ['task', 'state', 'size', 'tries', 'last updated'],
        fetch: paged(`/api/v1/dags/${e(dagId)}/runs/${e(runId)}/tasks`, 'tasks'),
        cells: (r: TaskRow) => [
          r.attempts > 1
            ? attemptsUrl(dagId, runId, r.taskId, r.mapIndex)
            : logUrl({
                dagId,
                runId,
                taskId: r.taskId,
                mapIndex: r.mapIndex,
                tryNumber: r.latestTry,
              }),
          r.taskId + (r.mapIndex >= 0 ? ` [${r.mapIndex}]` : ''),
          stateBadge(r.state),
          formatBytes(r.size),
          String(r.attempts),
          timeCell(r.lastUpdatedAt),
        ],
      } as Level<TaskRow> as Level<never>;
    }
    default: {
      if (route.view !== 'attempts') throw new Error('not a browse route');
      const { dagId, runId, taskId, mapIndex } = route;
      return {
        title: `Attempts of ${taskId}${mapIndex !== undefined && mapIndex >= 0 ? ` [${mapIndex}]` : ''}`,
        crumbs: [
          home,
          [dagId, runsUrl(dagId)],
          [runId, tasksUrl(dagId, runId)],
          [taskId, attemptsUrl(dagId, runId, taskId, mapIndex)],
        ],
        columns: ['try', 'state', 'size', 'started', 'updated'],
        // The catalog's attempts of one task are few: one call, filtered here.
        fetch: async (q: string) => {
          const { attempts } = await getJson<{ attempts: AttemptRow[] }>(
            `/api/v1/attempts${query({ dagId, runId, taskId, mapIndex })}`,
          );
          const rows = attempts
            .filter((a) => !q || `${a.tryNumber} ${a.state}`.includes(q.toLowerCase()))
            .sort((a, b) => b.tryNumber - a.tryNumber || b.mapIndex - a.mapIndex);
          return { rows, next: null };
        },
        cells: (a: AttemptRow) => [
          logUrl(a),
          `try ${a.tryNumber}${a.mapIndex >= 0 ? ` [${a.mapIndex}]` : ''}`,
          stateBadge(a.airflowState ?? a.state),
          formatBytes(a.size),
          timeCell(a.createdAt),
          timeCell(a.updatedAt),
        ],
      } as Level<AttemptRow> as Level<never>;
    }
  }
}

function running(n: number): Node | string {
  return n > 0 ? h('span', { class: 'badge state-running' }, `${n} running`) : '—';
}
