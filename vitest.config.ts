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
    // s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only offers
    // through its legacy provider; without it a truncated listing answers 500.
    execArgv: ['--openssl-legacy-provider'],
  },
});
