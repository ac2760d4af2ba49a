/**
 * Runs the GCS emulator as its own process, for tools that cannot start it in-process:
 *   node --import tsx test/emulators/gcs/main.ts --port 4443 [--host 127.0.0.1]
 *     [--data-dir DIR] [--bucket NAME]...
 * Prints the URL on stdout; stops on SIGINT/SIGTERM. Faults are set over HTTP at
 * `POST /_emulator/faults` (see gcs-emulator.ts).
 */
import { parseArgs } from 'node:util';
import { startGcsEmulator } from './gcs-emulator.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '4443' },
    host: { type: 'string', default: '127.0.0.1' },
    'data-dir': { type: 'string' },
    bucket: { type: 'string', multiple: true, default: [] },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`invalid --port ${values.port}\n`);
  process.exit(2);
}

const emulator = await startGcsEmulator({
  port,
  host: values.host,
  ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
});
for (const bucket of values.bucket ?? []) emulator.createBucket(bucket);
process.stdout.write(`${emulator.url}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void emulator.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
