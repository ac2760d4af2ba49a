import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/**
 * The page is served by `tasklog serve` under a CSP of `script-src 'self'; style-src 'self'`:
 * nothing may be inlined, so the preload polyfill (an inline script) is off and CSS stays a file.
 * `TASKLOG_VIEWER_API` points the dev server's proxy at a running `tasklog serve`.
 */
export default defineConfig({
  root: here('.'),
  base: '/',
  build: {
    outDir: here('../server/ui'),
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  server: {
    proxy: {
      '/api': { target: process.env.TASKLOG_VIEWER_API ?? 'http://127.0.0.1:8080' },
    },
  },
});
