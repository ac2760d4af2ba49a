// Builds the viewer into packages/server/ui/, which `tasklog serve` serves at `/`.
//
//   node packages/viewer/build.mjs      (the root build, test and start scripts run it)
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

await build({
  configFile: fileURLToPath(new URL('./vite.config.ts', import.meta.url)),
  logLevel: 'warn',
});
