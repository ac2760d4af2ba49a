/**
 * Runs the CloudWatch Logs emulator as its own process, for tools that cannot start it
 * in-process:
 *   node --import tsx test/emulators/cloudwatch/main.ts --port 4566 [--host 127.0.0.1]
 *     [--region us-east-1] [--log-group NAME]...
 * Prints the URL on stdout (pass it as the client's endpoint); stops on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startCloudWatchEmulator } from './cloudwatch-emulator.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '4566' },
    host: { type: 'string', default: '127.0.0.1' },
    region: { type: 'string', default: 'us-east-1' },
    'log-group': { type: 'string', multiple: true, default: [] },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`invalid --port ${values.port}\n`);
  process.exit(2);
}

const emulator = await startCloudWatchEmulator({ port, host: values.host, region: values.region });
for (const group of values['log-group'] ?? []) emulator.createLogGroup(group);
process.stdout.write(`${emulator.url}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void emulator.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
