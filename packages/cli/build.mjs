// Bundles the compiled CLI (dist/) into bundle/: tasklog's own modules and the pure-JS
// libraries it loads on every run (commander, zod, kysely, jose, smol-toml, the AWS SDK) become
// a few files, so a command reads a handful of files instead of hundreds. Code splitting keeps
// each command's code in its own chunk, loaded when that command runs. Left outside: native and
// worker-thread packages (better-sqlite3, pino), the servers' stack (express), and the SDKs that
// read files of their own at run time (Google Cloud's protos) or that few commands use. Each
// package left outside must be a dependency of @tasklog/cli, so that it resolves from bundle/.
//
//   node packages/cli/build.mjs      (after `tsc --build`; the root scripts run both)
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = fileURLToPath(new URL('.', import.meta.url));
await rm(`${here}bundle`, { recursive: true, force: true });
await build({
  entryPoints: [`${here}dist/main.js`],
  outdir: `${here}bundle`,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // The ESM builds where a package has both: smaller, and tree-shaken.
  mainFields: ['module', 'main'],
  external: [
    'better-sqlite3',
    'pg',
    'pino',
    'pino-*',
    'express',
    '@google-cloud/*',
    'google-auth-library',
    'google-gax',
    '@elastic/*',
  ],
  // CommonJS code inside an ESM bundle still calls require() for Node's own modules.
  banner: {
    js: "import { createRequire as __tasklogCreateRequire } from 'node:module'; const require = __tasklogCreateRequire(import.meta.url);",
  },
  // Less source for V8 to compile on every start; identifiers stay, so class names and stack
  // traces read as in the sources.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
});
