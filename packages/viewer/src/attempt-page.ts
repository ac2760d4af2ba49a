import {
  ApiError,
  type AttemptRef,
  type AttemptRow,
  apiFetch,
  getJson,
  logPath,
  mapQuery,
  query,
  token,
} from './api.js';
import { h } from './dom.js';
import { follow } from './follow.js';
import { bindKeys } from './keys.js';
import { LogView } from './log-view.js';
import { headLog } from './range-reader.js';
import { logUrl, navigate } from './router.js';
import { SearchPanel } from './search-panel.js';
import { Toolbar } from './toolbar.js';

/** What a mounted page gives back: how to take it down. */
export type Unmount = () => void;

/** The byte offset of a `#o=123` permalink, if the URL has one. */
export function hashOffset(hash = location.hash): number | undefined {
  const m = /^#o=(\d+)$/.exec(hash);
  return m ? Number(m[1]) : undefined;
}

/**
 * One attempt's log: the virtualised view, search, and live follow while the attempt runs.
 * Throws ApiError (401 goes to the token prompt; 403 and 404 are shown by the caller).
 */
export async function mountAttempt(root: HTMLElement, ref: AttemptRef): Promise<Unmount> {
  const cleanups: (() => void)[] = [];
  const attemptsQuery = query({
    dagId: ref.dagId,
    runId: ref.runId,
    taskId: ref.taskId,
    mapIndex: ref.mapIndex,
  });
  const [{ attempts }, info] = await Promise.all([
    getJson<{ attempts: AttemptRow[] }>(`/api/v1/attempts${attemptsQuery}`),
    headLog(ref).catch((err: unknown) => {
      // The archive holds nothing yet for an attempt that just started: follow it from 0.
      if (err instanceof ApiError && err.status === 404) return undefined;
      throw err;
    }),
  ]);
  const record = attempts.find((a) => a.tryNumber === ref.tryNumber);
  if (!info && record?.state !== 'running') {
    throw new ApiError(404, 'NOT_FOUND', 'the archive holds no log for this attempt');
  }
  const running = info ? !info.complete : true;

  const banners = h('div', { class: 'banners', role: 'status' });
  const banner = (kind: string, text: string) => {
    banners.append(h('div', { class: `banner banner-${kind}` }, text));
  };
  const pill = h('button', { type: 'button', class: 'new-lines', hidden: true });
  let unseen = 0;
  const view = new LogView(ref, {
    onPermalink(offset) {
      const url = `${location.pathname}${location.search}#o=${offset}`;
      history.replaceState(null, '', url);
      void navigator.clipboard?.writeText(location.href).catch(() => undefined);
    },
    onChange() {
      if (unseen > 0 && view.atBottom()) unseen = 0;
      pill.hidden = unseen === 0;
      pill.textContent = `${unseen} new line${unseen === 1 ? '' : 's'} ↓`;
    },
    onError(err) {
      banner('error', `Reading the log failed: ${(err as Error).message}`);
    },
  });
  pill.addEventListener('click', () => {
    unseen = 0;
    void view.toEnd();
  });

  const search = new SearchPanel(ref, (m) => void view.jumpTo(m.lineOffset, true));
  const toolbar = new Toolbar(ref, attempts, {
    onTry: (tryNumber) => navigate(logUrl({ ...ref, tryNumber })),
    onWrap: (wrap) => view.setWrap(wrap),
    onLocalTime: (local) => view.setLocalTime(local),
    onGoto: (text) => {
      const pct = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(text);
      if (pct) void view.jumpFraction(Number(pct[1]) / 100);
      else if (/^\s*\d+\s*$/.test(text)) void view.jumpTo(Number(text), true);
    },
    onSearch: () => search.open(),
    onErrors: () =>
      void search.search(
        0,
        String.raw`Traceback \(most recent call last\)|\b(ERROR|CRITICAL)\b`,
        true,
      ),
    onDownload: () => download(ref),
  });
  root.replaceChildren(
    h(
      'div',
      { class: 'attempt-page' },
      toolbar.element,
      banners,
      h('div', { class: 'log-area' }, view.element, pill, search.element),
    ),
  );
  toolbar.setStatus(running ? 'running' : (record?.state ?? 'archived'), info?.size ?? 0);

  const permalink = hashOffset();
  await view.open(info?.size ?? 0, !running, permalink ?? (running ? 'end' : 0));
  view.focus();

  const onHash = () => {
    const o = hashOffset();
    if (o !== undefined) void view.jumpTo(o, true);
  };
  addEventListener('hashchange', onHash);
  cleanups.push(() => removeEventListener('hashchange', onHash));
  cleanups.push(
    bindKeys({
      view,
      search,
      close: () => {
        search.close();
        view.focus();
      },
    }),
  );

  if (running) {
    // From the end of the lines held when they reach the archive's end (a line start), else
    // from the archive's end: the follow brings what comes after it.
    const from = view.win.atLogEnd ? view.win.end : view.win.size;
    const stop = follow(ref, from, {
      onLines(lines) {
        const atEnd = view.atBottom();
        const shown = view.appendLive(lines);
        if (!shown || !atEnd) unseen += lines.length;
        toolbar.setStatus('running', view.win.size);
        view.events.onChange();
      },
      onNotice(event) {
        if (event === 'source-lost') {
          banner('warn', 'The live source was lost: reading what the archive holds.');
        } else banner('warn', 'The writer stopped sending heartbeats: the attempt is abandoned.');
      },
      onEof(offset, complete) {
        view.setComplete(offset, complete);
        toolbar.setStatus(complete ? 'complete' : 'abandoned', offset);
        banner(complete ? 'info' : 'warn', complete ? 'End of log.' : 'End of log (incomplete).');
      },
      onFatal(err) {
        banner('error', `Following stopped: ${err.message}`);
      },
      onState(state) {
        toolbar.setLive(state);
      },
    });
    cleanups.push(stop);
  }
  return () => {
    for (const c of cleanups) c();
  };
}

/** Downloads the whole log: a plain link without a token, through fetch with one. */
async function download(ref: AttemptRef): Promise<void> {
  const href = logPath(ref) + mapQuery(ref, { download: 1 });
  const a = h('a', { href, download: '' });
  if (!token()) {
    a.click();
    return;
  }
  // A link cannot carry an Authorization header: fetch the body and save it as a blob.
  const res = await apiFetch(href);
  const name = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') ?? '')?.[1];
  const url = URL.createObjectURL(await res.blob());
  a.href = url;
  a.download = name ?? 'log.txt';
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
