/**
 * s3rver (a real S3-protocol server, in-process) in a temp folder with one bucket, recording
 * every request, optionally with the multipart listing and abort calls it lacks.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { S3Store } from '../../../packages/core/src/stores/s3/store.js';
import { decodePath, multipartApis } from './multipart-apis.js';
import { type Middleware, S3rver } from './s3rver-module.js';

/** One request as s3rver received it. */
export interface RecordedRequest {
  method: string;
  /** Path-style `/bucket/key`, percent-decoded. */
  path: string;
  query: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A multipart upload s3rver holds open (its parts stay on disk until completed or aborted). */
export interface OpenUpload {
  uploadId: string;
  key: string;
}

export interface S3rverFixture {
  /** `http://HOST:PORT` (default `http://127.0.0.1:PORT`) */
  endpoint: string;
  /** A bucket that exists. */
  bucket: string;
  /** Every request so far, oldest first. */
  requests: RecordedRequest[];
  /**
   * The multipart uploads s3rver holds open, read from its data folder: s3rver keeps each one in
   * `<bucket>/._S3rver_uploads/<upload id>/` (the key in a file `key`, one file per part) and
   * removes the folder when the upload completes. This is how the tests see that none stays open.
   */
  openUploads(): Promise<OpenUpload[]>;
  /** Every key under `prefix`, listed with the AWS SDK as Airflow's S3 reader lists them. */
  listKeys(prefix: string): Promise<string[]>;
  /** The S3 store of `s3://BUCKET/prefix` on this server. */
  openStore(prefix: string): S3Store;
  /** Environment for the tasklog CLI archiving to `s3://BUCKET/prefix` (through `endpoint`, e.g. a fault proxy). */
  cliEnv(prefix: string, endpoint?: string): NodeJS.ProcessEnv;
  close(): Promise<void>;
}

export interface S3rverOptions {
  /**
   * Also answer ListMultipartUploads, ListParts and AbortMultipartUpload, which s3rver 3.7.1 lacks
   * (NotImplemented / MethodNotAllowed), from s3rver's own upload folders and as the S3 API
   * reference describes them, so the store's real-S3 paths run against s3rver. Off by default:
   * then the tests see s3rver as it is.
   */
  multipartApis?: boolean;
  /** Interface to listen on. Default `127.0.0.1`. */
  host?: string;
  /** Port; default 0 (any free port). */
  port?: number;
}

/**
 * Starts s3rver in-process on a free port with one bucket, and puts s3rver's fixed credentials
 * into the environment, where the AWS SDK's default credential chain finds them.
 *
 * Paginated ListObjectsV2 needs Node's `--openssl-legacy-provider` (s3rver encrypts continuation
 * tokens with DES); vitest.config.ts starts the test workers with it.
 */
export async function startS3rver(
  bucket = 'tasklog-test',
  options: S3rverOptions = {},
): Promise<S3rverFixture> {
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  process.env.AWS_REGION = 'us-east-1';
  const directory = await mkdtemp(path.join(tmpdir(), 'tasklog-s3rver-'));
  const server = new S3rver({
    port: options.port ?? 0,
    address: options.host ?? '127.0.0.1',
    directory,
    silent: true,
    resetOnClose: true,
    configureBuckets: [{ name: bucket }],
  });
  const uploadsDir = path.join(directory, bucket, '._S3rver_uploads');
  const requests: RecordedRequest[] = [];
  const record: Middleware = async (ctx, next) => {
    requests.push({
      method: ctx.method,
      path: decodePath(ctx.path),
      query: ctx.querystring,
      headers: { ...ctx.headers },
    });
    await next();
  };
  // Before s3rver's router, after its XML encoding of plain-object bodies and its error handler.
  const router = server.middleware.length - 1;
  server.middleware.splice(
    router,
    0,
    ...(options.multipartApis ? [record, multipartApis(bucket, uploadsDir)] : [record]),
  );
  const { port } = await server.run();

  async function openUploads(): Promise<OpenUpload[]> {
    let ids: string[];
    try {
      ids = await readdir(uploadsDir);
    } catch {
      return [];
    }
    return Promise.all(
      ids.map(async (uploadId) => ({
        uploadId,
        key: await readFile(path.join(uploadsDir, uploadId, 'key'), 'utf8'),
      })),
    );
  }

  const host = options.host ?? '127.0.0.1';
  const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    endpoint,
    bucket,
    requests,
    openUploads,
    async listKeys(prefix) {
      const client = new S3Client({
        endpoint,
        forcePathStyle: true,
        region: 'us-east-1',
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      });
      try {
        const keys: string[] = [];
        let token: string | undefined;
        do {
          const page = await client.send(
            new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
          );
          for (const o of page.Contents ?? []) keys.push(o.Key!);
          token = page.NextContinuationToken;
        } while (token);
        return keys;
      } finally {
        client.destroy();
      }
    },
    openStore(prefix) {
      return S3Store.fromUrl(`s3://${bucket}/${prefix}`, {
        s3: { endpoint, force_path_style: true },
      });
    },
    cliEnv(prefix, through = endpoint) {
      return {
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
        AWS_REGION: 'us-east-1',
        TASKLOG__STORE__URL: `s3://${bucket}/${prefix}`,
        TASKLOG__S3__ENDPOINT: through,
        TASKLOG__S3__FORCE_PATH_STYLE: 'true',
      };
    },
    async close() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
