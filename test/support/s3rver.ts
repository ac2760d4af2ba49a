import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The part of s3rver 3.7's API the tests use (the package ships no types). */
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}
type S3rverClass = new (options: {
  port: number;
  address: string;
  directory: string;
  silent: boolean;
  resetOnClose: boolean;
  configureBuckets?: { name: string }[];
}) => S3rverInstance;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

export interface S3rverFixture {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  /** A bucket that exists. */
  bucket: string;
  close(): Promise<void>;
}

/**
 * Starts s3rver in-process on a free port with one bucket, and puts s3rver's fixed credentials
 * into the environment, where the AWS SDK's default credential chain finds them.
 *
 * Paginated ListObjectsV2 needs Node's `--openssl-legacy-provider` (s3rver encrypts continuation
 * tokens with DES); vitest.config.ts starts the test workers with it.
 */
export async function startS3rver(bucket = 'tasklog-test'): Promise<S3rverFixture> {
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
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    async close() {
      await server.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
