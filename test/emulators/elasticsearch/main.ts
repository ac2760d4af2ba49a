/**
 * Runs the Elasticsearch emulator as its own process, for tools that cannot start it in-process:
 *   node --import tsx test/emulators/elasticsearch/main.ts --port 9200 [--host 127.0.0.1]
 *     [--refresh-interval-ms 1000] [--index NAME]...
 * Prints the URL on stdout; stops on SIGINT/SIGTERM. Faults are set over HTTP under
 * `/_emulator/` (see es-emulator.ts).
 */
import { parseArgs } from 'node:util';
import { startElasticsearchEmulator } from './es-emulator.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9200' },
    host: { type: 'string', default: '127.0.0.1' },
    'refresh-interval-ms': { type: 'string', default: '1000' },
    index: { type: 'string', multiple: true, default: [] },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`invalid --port ${values.port}\n`);
  process.exit(2);
}
const refreshIntervalMs = Number(values['refresh-interval-ms']);
if (!Number.isInteger(refreshIntervalMs) || refreshIntervalMs < -1) {
  process.stderr.write(`invalid --refresh-interval-ms ${values['refresh-interval-ms']}\n`);
  process.exit(2);
}

const emulator = await startElasticsearchEmulator({ port, host: values.host, refreshIntervalMs });
for (const index of values.index ?? []) emulator.createIndex(index);
process.stdout.write(`${emulator.url}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void emulator.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
