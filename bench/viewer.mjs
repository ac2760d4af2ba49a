// bench/viewer: the log viewer in headless Chromium — time to first screen and page memory for
// logs of several sizes, and search time in the largest, each beside a baseline in the same run.
//
//   npx -y pnpm@12.4.2 build && node bench/viewer.mjs [--sizes 1,100,1024] [--runs 3]
//
// 1. Writes one log per size (MiB) straight into the local archive of a temporary TASKLOG_HOME,
//    with the catalog rows `tasklog ship` would have made (shipping 1 GiB would only copy it):
//    Airflow-like lines, each with its number as `[000000123]`, some ANSI colour, and one unique
//    needle line 1000 lines before the end. Starts `tasklog serve --port 0` on loopback (no auth).
// 2. Per size and run, a new page in Debian's Chromium (the browser tests' launch arguments, plus
//    `--js-flags=--expose-gc` and `--enable-precise-memory-info`) opens the attempt's URL:
//    - first screen: the viewer's `tasklog:first-lines` mark (startTime, ms from the navigation's
//      start, Chromium's performance API), and the wall time from `page.goto` until the first
//      line is visible;
//    - page memory: `performance.memory.usedJSHeapSize` after `window.gc()`, and the DOM's element
//      count, at the first screen, after End, after jumps to 25 %, 50 % and 75 %, and after 300
//      and 1000 PageDowns from there; also the bytes of `/log` the page fetched (Resource Timing).
//    The median of the runs is reported. The viewer's own files are loaded once, untimed, first.
// 3. Search in the largest log through `GET …/log/search` as the page sends it (`q`, `regex`,
//    `case`, `offset`, `limit=200`), following `scannedTo` while `done` is false: the wall time
//    until the needle is in an answer and until the whole log is scanned, plain and regex, case
//    ignored (the page's default) and matched. Baseline: GNU grep -c on the same file, in the
//    same run, with the same pattern and case rule. Medians of the runs.
// Prints Markdown tables and the command line. Everything lives in /tmp/tasklog-bench-viewer-*,
// removed at the end.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const args = process.argv.slice(2);
function option(name, fallback) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
}
const SIZES = option('sizes', '1,100,1024').split(',').map(Number);
const RUNS = Number(option('runs', '3'));
if (SIZES.some((s) => !(s > 0)) || !(RUNS > 0)) {
  console.error('usage: node bench/viewer.mjs [--sizes 1,100,1024] [--runs 3]');
  process.exit(2);
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'packages/cli/bundle/main.js');
const { attemptKey, openCatalog, PathTemplate } = await import(
  pathToFileURL(join(ROOT, 'packages/core/dist/index.js')).href
);
// playwright-core is a dependency of the test package; resolved from there, nothing else of it.
const playwright = await import(
  pathToFileURL(createRequire(join(ROOT, 'test/package.json')).resolve('playwright-core')).href
);
const { chromium } = playwright.default ?? playwright;

const CHROMIUM = '/usr/bin/chromium';
// test/browser/support/launch.ts's arguments, plus what the memory figures need.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--js-flags=--expose-gc',
  '--enable-precise-memory-info',
];

const DAG = 'bench_viewer';
const RUN = 'manual__2026-01-01T00:00:00+00:00';
const NEEDLE = 'tasklog-needle-5e1f0c2a';
const NEEDLE_REGEX = 'needle-[0-9a-f]{8}';
const NEEDLE_BEFORE_END = 1000;
const MIB = 1024 * 1024;

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor((s.length - 1) / 2)];
};
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const log = (...a) => console.error(...a);
const num = (n) => String(n).padStart(9, '0');

// ---------------------------------------------------------------------------------------------
// The logs.

/**
 * A block of TEMPLATE_LINES lines; each block of the log is a copy with the 9 digits of each
 * line's `[NNNNNNNNN]` rewritten. Lengths vary from about 90 to 200 bytes.
 */
const TEMPLATE_LINES = 4096;
function template() {
  const parts = [];
  const digitsAt = [];
  const starts = [];
  let bytes = 0;
  for (let i = 0; i < TEMPLATE_LINES; i++) {
    const ts = `[2026-01-01T${String(Math.floor(i / 3600) % 24).padStart(2, '0')}:${String(Math.floor(i / 60) % 60).padStart(2, '0')}:${String(i % 60).padStart(2, '0')}.${String((i * 37) % 1000).padStart(3, '0')}+0000]`;
    const payload = 'abcdefghij'.repeat(i % 9);
    let head;
    let tail;
    if (i % 32 === 31) {
      head = `${ts} {bench_task.py:77} ERROR - [`;
      tail = `] \x1b[1;31mupstream answered 503\x1b[0m, batch will be retried ${payload}`;
    } else if (i % 8 === 3) {
      head = `${ts} {taskinstance.py:1234} WARNING - [`;
      tail = `] \x1b[33mslow batch\x1b[0m (2.4 s), retrying in 5 s ${payload}`;
    } else if (i % 16 === 9) {
      head = `${ts} {logging_mixin.py:190} INFO - [`;
      tail = `] \x1b[32mcheckpoint written\x1b[0m to s3://bench-bucket/checkpoints/${payload}`;
    } else {
      head = `${ts} {bench_task.py:42} INFO - [`;
      tail = `] processed batch of ${(i * 7919) % 1000} rows in 0.${String(i % 1000).padStart(3, '0')} s ${payload}`;
    }
    const line = `${head}000000000${tail}\n`;
    starts.push(bytes);
    digitsAt.push(bytes + Buffer.byteLength(head));
    parts.push(line);
    bytes += Buffer.byteLength(line);
  }
  starts.push(bytes);
  return { buf: Buffer.from(parts.join('')), digitsAt, starts };
}
const TEMPLATE = template();

/** The log of about `mib` MiB: its line count, the needle's line, and where line n starts. */
function layout(mib) {
  const size = mib * MIB;
  const B = TEMPLATE.buf.length;
  const full = Math.floor(size / B);
  let rest = 0;
  while (rest < TEMPLATE_LINES && TEMPLATE.starts[rest + 1] <= size - full * B) rest++;
  const lines = full * TEMPLATE_LINES + rest;
  const needleAfter = lines - NEEDLE_BEFORE_END; // the needle follows this line
  /** The number of the line holding byte `offset` (before the needle). */
  const lineAt = (offset) => {
    const block = Math.floor(offset / B);
    let within = offset - block * B;
    let lo = 0;
    let hi = TEMPLATE_LINES - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (TEMPLATE.starts[mid] <= within) lo = mid;
      else hi = mid - 1;
    }
    within = lo;
    return block * TEMPLATE_LINES + within + 1;
  };
  return { lines, needleAfter, lineAt };
}

async function writeLog(path, mib) {
  const { lines, needleAfter } = layout(mib);
  const needle = Buffer.from(
    `[2026-01-01T23:59:59.000+0000] {bench_task.py:99} ERROR - ${NEEDLE}: the one line the bench searches for\n`,
  );
  await mkdir(dirname(path), { recursive: true });
  const out = createWriteStream(path, { highWaterMark: 8 * MIB });
  let size = 0;
  const write = async (buf) => {
    size += buf.length;
    if (!out.write(buf)) await once(out, 'drain');
  };
  for (let first = 1; first <= lines; first += TEMPLATE_LINES) {
    const count = Math.min(TEMPLATE_LINES, lines - first + 1);
    const block = Buffer.from(TEMPLATE.buf.subarray(0, TEMPLATE.starts[count]));
    for (let i = 0; i < count; i++) {
      let n = first + i;
      const last = TEMPLATE.digitsAt[i] + 8;
      for (let d = 0; d < 9; d++) {
        block[last - d] = 48 + (n % 10);
        n = Math.floor(n / 10);
      }
    }
    if (needleAfter >= first && needleAfter < first + count) {
      const cut = TEMPLATE.starts[needleAfter - first + 1];
      await write(block.subarray(0, cut));
      await write(needle);
      await write(block.subarray(cut));
    } else {
      await write(block);
    }
  }
  out.end();
  await once(out, 'finish');
  return size;
}

function attemptOf(mib) {
  return { dagId: DAG, runId: RUN, taskId: `log_${mib}_mib`, mapIndex: -1, tryNumber: 1 };
}
function archivePath(home, a) {
  return join(home, 'archive', ...new PathTemplate().render(attemptKey(a)).split('/'));
}
async function catalogShipped(home, attempts) {
  const catalog = await openCatalog(`sqlite://${join(home, 'catalog.db')}`);
  try {
    for (const a of attempts) {
      const key = attemptKey(a);
      await catalog.upsert(key, {
        relativePath: new PathTemplate().render(key),
        state: 'shipped',
        size: a.size,
        shippedAt: new Date(),
      });
    }
  } finally {
    await catalog.close();
  }
}
function pageUrl(base, a) {
  const e = encodeURIComponent;
  return `${base}/dags/${e(a.dagId)}/runs/${e(a.runId)}/tasks/${e(a.taskId)}/attempts/${a.tryNumber}`;
}
function searchUrl(base, a, params) {
  const e = encodeURIComponent;
  const q = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]));
  return `${base}/api/v1/dags/${e(a.dagId)}/runs/${e(a.runId)}/tasks/${e(a.taskId)}/attempts/${a.tryNumber}/log/search?${q}`;
}

// ---------------------------------------------------------------------------------------------
// serve.

function startServe(home) {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0'], {
    env: { PATH: process.env.PATH, TASKLOG_HOME: home, TASKLOG__LOGGING__LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b) => {
    stderr += b.toString();
  });
  const url = new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (b) => {
      out += b.toString();
      const m = /on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
  return { child, url, stderr: () => stderr };
}
function procMb(pid, field) {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

// ---------------------------------------------------------------------------------------------
// The page.

/** What the page holds now, after a forced GC (three, with a task turn between them). */
const PAGE_STATE = `(async () => {
  for (let i = 0; i < 3; i++) {
    window.gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  const fetched = performance
    .getEntriesByType('resource')
    .filter((e) => e.name.includes('/log'))
    .reduce((sum, e) => sum + e.transferSize, 0);
  return {
    heap: performance.memory.usedJSHeapSize,
    heapTotal: performance.memory.totalJSHeapSize,
    nodes: document.getElementsByTagName('*').length,
    lines: document.querySelectorAll('.log-lines .line').length,
    fetched,
  };
})()`;

async function settle(page) {
  // Reads the window's edges trigger; a bounded wait, the figure is taken either way.
  await page.waitForLoadState('networkidle', { timeout: 10_000 }).catch(() => undefined);
  await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
}

const lineLocator = (page, n) => page.locator('.log-lines .line', { hasText: `[${num(n)}]` });

async function viewerRun(context, base, mib) {
  const a = attemptOf(mib);
  const { lines, lineAt } = layout(mib);
  const size = LOGS.get(mib).size;
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(e.message));
  const t0 = process.hrtime.bigint();
  await page.goto(pageUrl(base, a), { waitUntil: 'commit' });
  await lineLocator(page, 1).waitFor({ timeout: 30_000 });
  const wallMs = ms(t0);
  const markMs = await page.evaluate(
    "performance.getEntriesByName('tasklog:first-lines')[0]?.startTime ?? NaN",
  );
  // Where the time to the mark went: the page's own files, then the first read of the log.
  const phases = await page.evaluate(`(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const mark = performance.getEntriesByName('tasklog:first-lines')[0]?.startTime ?? Infinity;
    const log = performance
      .getEntriesByType('resource')
      .filter((e) => /\\/log(\\?|$)/.test(e.name) && e.startTime < mark);
    return {
      domContentLoaded: nav ? nav.domContentLoadedEventEnd : NaN,
      logRequests: log.length,
      readStart: log.length ? Math.min(...log.map((e) => e.startTime)) : NaN,
      readEnd: log.length ? Math.max(...log.map((e) => e.responseEnd)) : NaN,
    };
  })()`);
  await settle(page);
  const states = { first: await page.evaluate(PAGE_STATE) };

  await page.keyboard.press('End');
  await lineLocator(page, lines).waitFor({ timeout: 30_000 });
  await settle(page);
  states.end = await page.evaluate(PAGE_STATE);

  const goto = page.getByLabel('Go to a percentage or a byte offset');
  for (const pct of [25, 50, 75]) {
    await goto.fill(`${pct}%`);
    await goto.press('Enter');
    await lineLocator(page, lineAt(Math.floor((pct / 100) * size))).waitFor({ timeout: 30_000 });
    await settle(page);
    states[`p${pct}`] = await page.evaluate(PAGE_STATE);
  }

  // Scrolling on from 75 %: the window reads forward and trims what is far behind.
  await page.locator('.log-viewport').focus();
  for (let i = 0; i < 300; i++) await page.keyboard.press('PageDown');
  await settle(page);
  states.scrolled = await page.evaluate(PAGE_STATE);
  // 700 more: several times the window's 2 MiB of log, read forward.
  for (let i = 0; i < 700; i++) await page.keyboard.press('PageDown');
  await settle(page);
  states.scrolledMore = await page.evaluate(PAGE_STATE);
  states.scrolledMore.topLine = await page.evaluate(
    "Number(/\\[(\\d{9})\\]/.exec(document.querySelector('.log-lines .line')?.textContent ?? '')?.[1] ?? NaN)",
  );
  await page.close();
  return { markMs, wallMs, phases, states, errors };
}

// ---------------------------------------------------------------------------------------------
// Search.

/** GET of a JSON answer over a new connection (an idle kept-alive one may be closed under it). */
function getJson(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { accept: 'application/json' } }, (res) => {
      const body = [];
      res.on('data', (b) => body.push(b));
      res.on('end', () => {
        const text = Buffer.concat(body).toString();
        if (res.statusCode !== 200) reject(new Error(`search answered ${res.statusCode}: ${text}`));
        else resolve(JSON.parse(text));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function tasklogSearch(base, a, size, q, regex, caseSensitive) {
  const t0 = process.hrtime.bigint();
  let offset = 0;
  let foundMs = Number.NaN;
  let requests = 0;
  let matches = 0;
  const slowest = { ms: 0, stopped: null };
  for (;;) {
    const r0 = process.hrtime.bigint();
    const answer = await getJson(
      searchUrl(base, a, { q, regex, case: caseSensitive, offset, limit: 200 }),
    );
    requests++;
    if (ms(r0) > slowest.ms) Object.assign(slowest, { ms: ms(r0), stopped: answer.stopped });
    matches += answer.matches.length;
    if (Number.isNaN(foundMs) && answer.matches.some((m) => m.line.includes(NEEDLE))) {
      foundMs = ms(t0);
    }
    if (answer.done) {
      if (answer.scannedTo !== size) throw new Error(`done at ${answer.scannedTo} of ${size}`);
      break;
    }
    offset = answer.scannedTo;
  }
  return { foundMs, doneMs: ms(t0), requests, matches, slowestRequestMs: slowest.ms };
}

function grepCount(flags, pattern, file) {
  const t0 = process.hrtime.bigint();
  const out = execFileSync('grep', [...flags, '-c', '--', pattern, file], { encoding: 'utf8' });
  return { ms: ms(t0), count: Number(out.trim()) };
}

// ---------------------------------------------------------------------------------------------

const WORK = await mkdtemp(join(tmpdir(), 'tasklog-bench-viewer-'));
let serve;
let context;
async function cleanup() {
  await context?.close().catch(() => undefined);
  serve?.child.kill('SIGTERM');
  await rm(WORK, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => void cleanup().then(() => process.exit(130)));
}

const LOGS = new Map();
const home = join(WORK, 'home');
try {
  for (const mib of SIZES) {
    const a = attemptOf(mib);
    const file = archivePath(home, a);
    const t0 = process.hrtime.bigint();
    const size = await writeLog(file, mib);
    LOGS.set(mib, { file, size, ...a });
    log(
      `wrote ${mib} MiB log (${size} bytes, ${layout(mib).lines} numbered lines) in ${Math.round(ms(t0))} ms`,
    );
  }
  await catalogShipped(home, [...LOGS.values()]);
  serve = startServe(home);
  const base = await serve.url;
  log(`tasklog serve on ${base}`);

  context = await chromium.launchPersistentContext(join(WORK, 'chromium'), {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: 1280, height: 800 },
  });
  for (const p of context.pages()) await p.close();
  // The Resource Timing buffer holds 250 entries by default; a long scroll makes more.
  await context.addInitScript('performance.setResourceTimingBufferSize(100000)');
  // The viewer's own files once, untimed: what is timed is the log, not the first renderer.
  {
    const page = await context.newPage();
    await page.goto(base);
    await page.getByRole('link', { name: DAG }).waitFor();
    await page.close();
  }

  const viewer = new Map();
  for (const mib of SIZES) {
    const runs = [];
    for (let r = 0; r < RUNS; r++) {
      const run = await viewerRun(context, base, mib);
      log(
        `${mib} MiB run ${r + 1}: mark ${run.markMs.toFixed(1)} ms, wall ${run.wallMs.toFixed(1)} ms, heap ${Object.entries(
          run.states,
        )
          .map(([k, s]) => `${k} ${(s.heap / MIB).toFixed(2)}`)
          .join(', ')} MiB, nodes ${Object.values(run.states)
          .map((s) => s.nodes)
          .join('/')}${run.errors.length ? `, page errors: ${run.errors.join(' | ')}` : ''}`,
      );
      runs.push(run);
    }
    viewer.set(mib, runs);
  }
  await context.close();
  context = undefined;

  // Search in the largest log.
  const big = Math.max(...SIZES);
  const bigLog = LOGS.get(big);
  const modes = [
    {
      name: 'plain, case ignored (the page default)',
      q: NEEDLE,
      regex: false,
      cs: false,
      grep: ['-F', '-i'],
    },
    { name: 'plain, match case', q: NEEDLE, regex: false, cs: true, grep: ['-F'] },
    {
      name: 'regex, case ignored (the page default)',
      q: NEEDLE_REGEX,
      regex: true,
      cs: false,
      grep: ['-E', '-i'],
    },
    { name: 'regex, match case', q: NEEDLE_REGEX, regex: true, cs: true, grep: ['-E'] },
  ];
  const search = modes.map((m) => ({ ...m, tasklog: [], baseline: [] }));
  for (let r = 0; r < RUNS; r++) {
    for (const m of search) {
      const g = grepCount(m.grep, m.q, bigLog.file);
      if (g.count !== 1) throw new Error(`grep ${m.grep.join(' ')} counted ${g.count} lines`);
      const t = await tasklogSearch(base, bigLog, bigLog.size, m.q, m.regex, m.cs);
      if (t.matches !== 1) throw new Error(`tasklog search (${m.name}) found ${t.matches}`);
      m.baseline.push(g.ms);
      m.tasklog.push(t);
      log(
        `search ${m.name}, run ${r + 1}: tasklog found ${t.foundMs.toFixed(0)} ms, whole log ${t.doneMs.toFixed(0)} ms (${t.requests} requests, the longest ${t.slowestRequestMs.toFixed(0)} ms); grep ${m.grep.join(' ')} -c ${g.ms.toFixed(0)} ms`,
      );
    }
  }
  const serveHwm = procMb(serve.child.pid, 'VmHWM');
  const serveRss = procMb(serve.child.pid, 'VmRSS');

  // ---- The tables.
  const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
  const mb = (x) => (x / MIB).toFixed(2);
  const med = (runs, pick) => median(runs.map(pick));
  const out = [];
  const cmd = `node bench/viewer.mjs --sizes ${SIZES.join(',')} --runs ${RUNS}`;
  const chromiumVersion = execFileSync(CHROMIUM, ['--version'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  }).trim();
  out.push(
    `viewer: ${SIZES.map((s) => `${s} MiB`).join(', ')} logs, median of ${RUNS} runs (${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores, node ${process.version}, ${chromiumVersion}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`,
    '',
    '| log | first screen, mark (ms) | first screen, wall (ms) | JS heap at first screen (MiB) | after End | after 25 % | after 50 % | after 75 % | after 300 PageDowns | after 1000 PageDowns | DOM elements (first / max) | /log bytes fetched by the end (KiB) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const mib of SIZES) {
    const runs = viewer.get(mib);
    const heap = (k) => mb(med(runs, (r) => r.states[k].heap));
    const nodesMax = med(runs, (r) => Math.max(...Object.values(r.states).map((s) => s.nodes)));
    out.push(
      `| ${mib} MiB | ${f1(med(runs, (r) => r.markMs))} | ${f1(med(runs, (r) => r.wallMs))} | ${heap('first')} | ${heap('end')} | ${heap('p25')} | ${heap('p50')} | ${heap('p75')} | ${heap('scrolled')} | ${heap('scrolledMore')} | ${med(runs, (r) => r.states.first.nodes)} / ${nodesMax} | ${(med(runs, (r) => r.states.scrolledMore.fetched) / 1024).toFixed(0)} |`,
    );
  }
  out.push('');
  for (const mib of SIZES) {
    const runs = viewer.get(mib);
    out.push(
      `runs, ${mib} MiB: mark ${runs.map((r) => r.markMs.toFixed(1)).join(' ')} ms; wall ${runs.map((r) => r.wallMs.toFixed(1)).join(' ')} ms; heap at first screen ${runs.map((r) => mb(r.states.first.heap)).join(' ')} MiB; lines in the DOM ${runs
        .map((r) =>
          Object.values(r.states)
            .map((s) => s.lines)
            .join('/'),
        )
        .join(
          ' ',
        )}; top line after 1000 PageDowns ${runs.map((r) => r.states.scrolledMore.topLine).join(' ')}; page errors ${runs.reduce((n, r) => n + r.errors.length, 0)}`,
      `  median phases, ${mib} MiB (ms from the navigation's start): DOMContentLoaded ${f1(med(runs, (r) => r.phases.domContentLoaded))}, first /log request (HEAD, then Range) sent ${f1(med(runs, (r) => r.phases.readStart))}, last answered ${f1(med(runs, (r) => r.phases.readEnd))} (${med(runs, (r) => r.phases.logRequests)} requests), mark ${f1(med(runs, (r) => r.markMs))}`,
    );
  }
  out.push(
    '',
    `search: the ${big} MiB log (${bigLog.size} bytes), needle ${NEEDLE_BEFORE_END} lines before the end, from offset 0, median of ${RUNS} runs`,
    '',
    '| search | tasklog: needle found (ms) | tasklog: whole log scanned (ms) | requests (longest, ms) | baseline: grep -c (ms) | ratio tasklog/grep (whole log) |',
    '|---|---|---|---|---|---|',
  );
  for (const m of search) {
    const found = median(m.tasklog.map((t) => t.foundMs));
    const done = median(m.tasklog.map((t) => t.doneMs));
    const g = median(m.baseline);
    out.push(
      `| ${m.name}: \`${m.q}\` | ${found.toFixed(0)} | ${done.toFixed(0)} | ${median(m.tasklog.map((t) => t.requests))} (${median(m.tasklog.map((t) => t.slowestRequestMs)).toFixed(0)}) | \`grep ${m.grep.join(' ')} -c\` ${g.toFixed(0)} | ${(done / g).toFixed(1)} |`,
    );
  }
  out.push(
    '',
    `runs: ${search.map((m) => `${m.name}: tasklog ${m.tasklog.map((t) => t.doneMs.toFixed(0)).join(' ')} ms, grep ${m.baseline.map((x) => x.toFixed(0)).join(' ')} ms`).join('; ')}`,
    `tasklog serve: peak RSS ${serveHwm.toFixed(1)} MB, RSS at the end ${serveRss.toFixed(1)} MB`,
    `command: ${cmd}`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
} catch (err) {
  if (serve) log(`tasklog serve's stderr:\n${serve.stderr().slice(-4000)}`);
  throw err;
} finally {
  await cleanup();
}
process.exit(0);
