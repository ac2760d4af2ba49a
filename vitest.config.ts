import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** A source file of a package: `src('core', 'index.ts')`. */
const src = (pkg: string, file: string) =>
  fileURLToPath(new URL(`./packages/${pkg}/src/${file}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources; only end-to-end tests that spawn the CLI use dist/.
    // Exact matches: a plain '@tasklog/core' entry would also rewrite '@tasklog/core/testing'.
    alias: [
      { find: /^@tasklog\/core$/, replacement: src('core', 'index.ts') },
      { find: /^@tasklog\/core\/testing$/, replacement: src('core', 'testing/index.ts') },
      {
        find: /^@tasklog\/core\/stores\/([a-z-]+)$/,
        replacement: src('core', 'stores/$1/index.ts'),
      },
      { find: /^@tasklog\/server$/, replacement: src('server', 'index.ts') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two at once on the 2-core machines this runs on: many suites wait on the wall clock (an
    // outage, scan intervals, child processes), and vitest would otherwise run one file at a time.
    maxWorkers: 2,
    // s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers
    // through its legacy provider; without it a truncated listing answers 500.
    execArgv: ['--openssl-legacy-provider'],
  },
});
