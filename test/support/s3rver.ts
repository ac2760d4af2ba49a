import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { S3Store } from '../../packages/core/src/stores/s3/store.js';

/** The koa context s3rver's middleware sees (the package ships no types). */
interface KoaContext {
  method: string;
  path: string;
  querystring: string;
  query: Record<string, string | undefined>;
  headers: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
}
type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

/** The part of s3rver 3.7's API the tests use. */
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  /** Koa's middleware stack; the last entry is s3rver's router. */
  middleware: Middleware[];
}
type S3rverClass = new (options: {
  port: number;
  address: string;
  directory: string;
  silent: boolean;
  resetOnClose: boolean;
  configureBuckets?: { name: string }[];
}) => S3rverInstance;
type S3ErrorClass = new (code: string, message: string) => Error;

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverClass;
const S3Error = require('s3rver/lib/models/error') as S3ErrorClass;

// s3rver 3.7.1 decodes `x-amz-copy-source` with decodeURI, which leaves %2B, %3A, %3D ... encoded,
// so a key with `+`, `:` or `=` (every Airflow key) encoded as S3 requires
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html) is "not found". S3
// decodes the header fully; so does this wrapper of s3rver's CopyObject handler, by re-encoding
// the header in the form decodeURI undoes. It runs after s3rver checked the request's signature.
const objectController = require('s3rver/lib/controllers/object') as {
  putObjectCopy: (ctx: KoaContext) => Promise<void>;
  __copySourceFixed?: boolean;
};
if (!objectController.__copySourceFixed) {
  const putObjectCopy = objectController.putObjectCopy;
  objectController.putObjectCopy = (ctx) => {
    const source = ctx.headers['x-amz-copy-source'];
    if (typeof source === 'string') {
      ctx.headers['x-amz-copy-source'] = source
        .split('/')
        .map((segment) => encodeURI(decodeURIComponent(segment)))
        .join('/');
    }
    return putObjectCopy(ctx);
  };
  objectController.__copySourceFixed = true;
}

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
  /** `http://127.0.0.1:PORT` */
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
    port: 0,
    address: '127.0.0.1',
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

  const endpoint = `http://127.0.0.1:${port}`;
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

function decodePath(raw: string): string {
  return raw.split('/').map(decodeURIComponent).join('/');
}

/**
 * ListMultipartUploads (`GET /bucket?uploads`), ListParts (`GET /bucket/key?uploadId`) and
 * AbortMultipartUpload (`DELETE /bucket/key?uploadId`), per
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListMultipartUploads.html,
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListParts.html and
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html (one page each:
 * the tests hold few uploads and parts). No signature check: s3rver's own runs in its router.
 */
function multipartApis(bucket: string, uploadsDir: string): Middleware {
  const keyOf = async (uploadId: string) =>
    readFile(path.join(uploadsDir, uploadId, 'key'), 'utf8').catch(() => undefined);
  const noSuchUpload = () =>
    new S3Error(
      'NoSuchUpload',
      'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
    );
  return async (ctx, next) => {
    const [, b, ...rest] = decodePath(ctx.path).split('/');
    const key = rest.join('/');
    if (b !== bucket) return next();
    const uploadId = ctx.query.uploadId;
    if (ctx.method === 'GET' && key === '' && 'uploads' in ctx.query) {
      const prefix = ctx.query.prefix ?? '';
      const uploads: { Key: string; UploadId: string; Initiated: string }[] = [];
      for (const id of await readdir(uploadsDir).catch(() => [] as string[])) {
        const k = await keyOf(id);
        if (k === undefined || !k.startsWith(prefix)) continue;
        const { birthtime } = await stat(path.join(uploadsDir, id));
        uploads.push({ Key: k, UploadId: id, Initiated: birthtime.toISOString() });
      }
      uploads.sort((x, y) => (x.Key < y.Key ? -1 : x.Key > y.Key ? 1 : 0));
      ctx.body = {
        ListMultipartUploadsResult: {
          '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
          Bucket: bucket,
          Prefix: prefix,
          MaxUploads: 1000,
          IsTruncated: false,
          Upload: uploads,
        },
      };
      return;
    }
    if (key === '' || uploadId === undefined || (ctx.method !== 'GET' && ctx.method !== 'DELETE')) {
      return next();
    }
    if ((await keyOf(uploadId)) !== key) throw noSuchUpload();
    const dir = path.join(uploadsDir, uploadId);
    if (ctx.method === 'DELETE') {
      await rm(dir, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    const parts = [];
    for (const name of await readdir(dir)) {
      if (!/^[0-9]+$/.test(name)) continue;
      const file = path.join(dir, name);
      // s3rver writes a part's MD5 once the part is whole: a part still arriving has none yet.
      const md5 = await readFile(`${file}.md5`, 'utf8').catch(() => undefined);
      if (md5 === undefined) continue;
      const info = await stat(file);
      parts.push({
        PartNumber: Number(name),
        LastModified: info.mtime.toISOString(),
        ETag: `"${md5}"`,
        Size: info.size,
      });
    }
    parts.sort((x, y) => x.PartNumber - y.PartNumber);
    ctx.body = {
      ListPartsResult: {
        '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MaxParts: 1000,
        IsTruncated: false,
        Part: parts,
      },
    };
  };
}
