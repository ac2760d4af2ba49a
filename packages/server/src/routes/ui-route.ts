import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Router } from 'express';
import { sendError } from '../http-errors.js';

/**
 * The built viewer: `packages/server/ui/` (`dist/routes/` → `../../ui`; the same from `src/`).
 * Code bundled elsewhere (the CLI) passes its own `uiDir`.
 */
export const DEFAULT_UI_DIR = fileURLToPath(new URL('../../ui', import.meta.url));

/**
 * The page's policy: its own scripts, styles, images and API only, nothing inline, no framing.
 * The API keeps its stricter `default-src 'none'` (hardening.ts).
 */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The log viewer's static files, without authentication (they hold no data; every `/api/…`
 * call the page makes is authenticated): `index.html` for `/` and every page route under
 * `/dags/…`, re-validated on each visit, and `/assets/*`, whose names carry their content hash,
 * cached for a year. Answers 503 while the viewer is not built.
 */
export function uiRoutes(uiDir: string): Router {
  const router = express.Router();
  const index = join(uiDir, 'index.html');
  router.use(
    '/assets',
    express.static(join(uiDir, 'assets'), {
      index: false,
      redirect: false,
      dotfiles: 'ignore',
      immutable: true,
      maxAge: 365 * 24 * 3600 * 1000,
      setHeaders: (res) => res.setHeader('Content-Security-Policy', PAGE_CSP),
    }),
  );
  router.get(['/', '/dags', '/dags/*page'], async (_req, res, next) => {
    const built = await stat(index).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!built) {
      sendError(
        res,
        503,
        'UI_NOT_BUILT',
        'the log viewer is not built: run `node packages/viewer/build.mjs` (the API works without it)',
      );
      return;
    }
    res.sendFile(
      index,
      {
        headers: { 'Cache-Control': 'no-cache', 'Content-Security-Policy': PAGE_CSP },
        cacheControl: false,
        dotfiles: 'allow',
      },
      (err) => {
        if (err) next(err);
      },
    );
  });
  return router;
}
