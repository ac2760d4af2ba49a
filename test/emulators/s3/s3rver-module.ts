/**
 * s3rver 3.7.1 as the wrapper uses it: the part of its API it needs (the package ships no
 * types), and a fix to its CopyObject handler applied once per process.
 */
import { createRequire } from 'node:module';

/** The koa context s3rver's middleware sees (the package ships no types). */
export interface KoaContext {
  method: string;
  path: string;
  querystring: string;
  query: Record<string, string | undefined>;
  headers: Record<string, string | string[] | undefined>;
  status: number;
  body: unknown;
}
export type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

/** The part of s3rver 3.7's API the tests use. */
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  /** Koa's middleware stack; the last entry is s3rver's router. */
  middleware: Middleware[];
}
export type S3rverClass = new (options: {
  port: number;
  address: string;
  directory: string;
  silent: boolean;
  resetOnClose: boolean;
  configureBuckets?: { name: string }[];
}) => S3rverInstance;
export type S3ErrorClass = new (code: string, message: string) => Error;

const require = createRequire(import.meta.url);
export const S3rver = require('s3rver') as S3rverClass;
export const S3Error = require('s3rver/lib/models/error') as S3ErrorClass;

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
