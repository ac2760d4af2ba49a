/**
 * Loads tasklog's configuration the way the CLI does, prints the keys that are not at their
 * default with where each came from (secrets masked), and checks that the configured store
 * answers.
 *
 *   TASKLOG__STORE__URL=s3://my-bucket/logs TASKLOG__S3__REGION=eu-west-1 \
 *     npx tsx examples/show-config.ts --config /etc/tasklog.toml [--all]
 *
 * Precedence, lowest first: built-in defaults, the TOML file (--config or TASKLOG_CONFIG),
 * environment variables TASKLOG__SECTION__KEY, then flags (here: --store). Any key may also be
 * given as KEY_cmd, a command whose output is the (secret) value.
 */
import { parseArgs } from 'node:util';
import {
  ConfigError,
  describeConfig,
  isTasklogError,
  type LoadedConfig,
  loadConfig,
  openStore,
  PathTemplate,
  storeOptionsFromConfig,
} from '@tasklog/core';

const { values: args } = parseArgs({
  options: {
    config: { type: 'string' },
    store: { type: 'string' },
    all: { type: 'boolean', default: false },
  },
});

let loaded: LoadedConfig;
try {
  // Flags are dotted keys; `flagNames` says how each is shown in sources and errors.
  loaded = loadConfig({
    ...(args.config !== undefined ? { configPath: args.config } : {}),
    flags: { 'store.url': args.store },
    flagNames: { 'store.url': '--store' },
  });
} catch (err) {
  // ConfigError lists every bad key with where its value came from, not just the first one.
  if (!(err instanceof ConfigError)) throw err;
  for (const i of err.issues) console.error(`${i.key} (from ${i.source}): ${i.message}`);
  process.exit(2);
}

// Values of secret keys (named like a credential, or given through `_cmd`) and the passwords
// of URLs show as ***.
for (const { key, value, source } of describeConfig(loaded)) {
  if (args.all || source !== 'default')
    console.log(`${key} = ${JSON.stringify(value)}  (${source})`);
}

const { config } = loaded;
// storeOptionsFromConfig: every backend's [section], compression and the writers' flush size.
const store = await openStore(
  config.store.url,
  storeOptionsFromConfig(config, new PathTemplate(config.core.path_template)),
);
try {
  await store.ping();
  console.log(`store ${store.url} answers`);
} catch (err) {
  if (!isTasklogError(err)) throw err;
  console.log(`store ${store.url} does not answer: ${err.code}: ${err.message}`);
} finally {
  await store.close();
}
