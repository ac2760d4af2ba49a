/**
 * Runs the Cloud Logging emulator as its own process, for tools that cannot start it in-process:
 *   node --import tsx test/emulators/cloud-logging/main.ts [--port 8085] [--rest-port 8086]
 *     [--host 127.0.0.1]
 * Prints the gRPC address and the REST URL on stdout; stops on SIGINT/SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startCloudLoggingEmulator } from './cloud-logging-emulator.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8085' },
    'rest-port': { type: 'string', default: '8086' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});

function portOf(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    process.stderr.write(`invalid --${name} ${text}\n`);
    process.exit(2);
  }
  return n;
}

const emulator = await startCloudLoggingEmulator({
  host: values.host,
  port: portOf('port', values.port),
  restPort: portOf('rest-port', values['rest-port']),
});
process.stdout.write(`grpc ${emulator.url}\nrest ${emulator.restUrl}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void emulator.close().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
