import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(`./packages/${p}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources; only end-to-end tests that spawn the CLI use dist/.
    alias: {
      '@tasklog/core': src('core'),
      '@tasklog/server': src('server'),
    },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
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
