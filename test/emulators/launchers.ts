/**
 * What `tasklog-emulator <name>` can start: each emulator's own options and how to start it.
 * Emulators are imported only when started, so that starting one does not load the others
 * (gRPC, s3rver's patch).
 */
import type { ParseArgsConfig } from 'node:util';

type OptionSpecs = NonNullable<ParseArgsConfig['options']>;
export type OptionValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface Listen {
  host: string;
  port: number;
}

export interface Started {
  /** Where to connect, printed as one JSON line: `url` and `port`, and more for some. */
  info: Record<string, unknown>;
  close(): Promise<void>;
}

export interface Launcher {
  summary: string;
  /** Options besides --host and --port. */
  options: OptionSpecs;
  /** One line per option in `options`, for --help. */
  help: string[];
  /** s3rver encrypts ListObjectsV2 continuation tokens with DES (OpenSSL's legacy provider). */
  needsLegacyOpenssl?: boolean;
  start(values: OptionValues, listen: Listen): Promise<Started>;
}

const strings = (value: OptionValues[string]) =>
  (Array.isArray(value) ? value : []).filter((v): v is string => typeof v === 'string');

/**
 * A started HTTP emulator as `start` returns it (its url and port, and `extra`, as info), once
 * `create` has made each of `names` in it; if that throws (a bad name), it is closed first.
 */
async function started(
  emulator: { url: string; port: number; close(): Promise<void> },
  names: string[],
  create: (name: string) => void,
  extra: Record<string, unknown> = {},
): Promise<Started> {
  try {
    for (const name of names) create(name);
  } catch (err) {
    await emulator.close();
    throw err;
  }
  return {
    info: { url: emulator.url, port: emulator.port, ...extra },
    close: () => emulator.close(),
  };
}

export const launchers: Record<string, Launcher> = {
  gcs: {
    summary: 'Google Cloud Storage JSON API (apiEndpoint = url)',
    options: { 'data-dir': { type: 'string' }, bucket: { type: 'string', multiple: true } },
    help: [
      '--data-dir DIR      folder for the temp folder holding object bytes (default: OS temp)',
      '--bucket NAME       create this bucket (repeatable)',
    ],
    async start(values, listen) {
      const { startGcsEmulator } = await import('./gcs/index.js');
      const dataDir = typeof values['data-dir'] === 'string' ? values['data-dir'] : undefined;
      const emulator = await startGcsEmulator({ ...listen, ...(dataDir ? { dataDir } : {}) });
      return started(emulator, strings(values.bucket), (bucket) => emulator.createBucket(bucket));
    },
  },
  cloudwatch: {
    summary: 'CloudWatch Logs, AWS JSON 1.1 (the client endpoint = url; any SigV4 key)',
    options: {
      region: { type: 'string', default: 'us-east-1' },
      'log-group': { type: 'string', multiple: true },
    },
    help: [
      '--region NAME       region in ARNs (default us-east-1)',
      '--log-group NAME    create this log group (repeatable)',
    ],
    async start(values, listen) {
      const { startCloudWatchEmulator } = await import('./cloudwatch/index.js');
      const region = String(values.region);
      const emulator = await startCloudWatchEmulator({ ...listen, region });
      const groups = strings(values['log-group']);
      return started(emulator, groups, (group) => emulator.createLogGroup(group), { region });
    },
  },
  elasticsearch: {
    summary: 'Elasticsearch 9 REST API (the client node = url)',
    options: {
      'refresh-interval-ms': { type: 'string', default: '1000' },
      index: { type: 'string', multiple: true },
    },
    help: [
      '--refresh-interval-ms N  default index.refresh_interval (default 1000; -1 never)',
      '--index NAME             create this index (repeatable)',
    ],
    async start(values, listen) {
      const { startElasticsearchEmulator } = await import('./elasticsearch/index.js');
      const refreshIntervalMs = integer('refresh-interval-ms', values['refresh-interval-ms'], -1);
      const emulator = await startElasticsearchEmulator({ ...listen, refreshIntervalMs });
      return started(emulator, strings(values.index), (index) => emulator.createIndex(index));
    },
  },
  'cloud-logging': {
    summary: 'Cloud Logging v2, gRPC at url (HOST:PORT) and REST at restUrl',
    options: { 'rest-port': { type: 'string', default: '0' } },
    help: ['--rest-port N       port of the REST server (default 0: any free port)'],
    async start(values, listen) {
      const { startCloudLoggingEmulator } = await import('./cloud-logging/index.js');
      const restPort = port('rest-port', values['rest-port']);
      const emulator = await startCloudLoggingEmulator({ ...listen, restPort });
      return {
        info: {
          url: emulator.url,
          port: emulator.port,
          restUrl: emulator.restUrl,
          restPort: emulator.restPort,
        },
        close: () => emulator.close(),
      };
    },
  },
  s3: {
    summary: 's3rver 3.7.1 in a temp folder (path-style; credentials S3RVER / S3RVER)',
    options: {
      bucket: { type: 'string', default: 'tasklog-test' },
      'multipart-apis': { type: 'boolean', default: false },
    },
    help: [
      '--bucket NAME       the bucket to create (default tasklog-test)',
      '--multipart-apis    also answer ListMultipartUploads, ListParts, AbortMultipartUpload',
    ],
    needsLegacyOpenssl: true,
    async start(values, listen) {
      const { startS3rver } = await import('./s3/index.js');
      const multipartApis = values['multipart-apis'] === true;
      const s3 = await startS3rver(String(values.bucket), { ...listen, multipartApis });
      return {
        info: {
          url: s3.endpoint,
          port: Number(new URL(s3.endpoint).port),
          bucket: s3.bucket,
          region: 'us-east-1',
          accessKeyId: 'S3RVER',
          secretAccessKey: 'S3RVER',
        },
        close: () => s3.close(),
      };
    },
  },
};

/** Thrown for a bad option value; the command prints it and exits 2. */
export class UsageError extends Error {}

export function port(name: string, text: OptionValues[string]): number {
  return integer(name, text, 0, 65535);
}

function integer(name: string, text: OptionValues[string], min: number, max = 2 ** 31): number {
  const n = Number(text);
  if (typeof text !== 'string' || !/^-?\d+$/.test(text) || n < min || n > max) {
    throw new UsageError(`invalid --${name} ${String(text)}`);
  }
  return n;
}
