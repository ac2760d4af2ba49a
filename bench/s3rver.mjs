// Starts s3rver (a real S3-protocol server) on 127.0.0.1 with one bucket and prints its URL.
//   node --openssl-legacy-provider bench/s3rver.mjs DIRECTORY BUCKET
import { createRequire } from 'node:module';

const S3rver = createRequire(new URL('../test/package.json', import.meta.url))('s3rver');
const [directory, bucket] = process.argv.slice(2);
const server = new S3rver({
  port: 0,
  address: '127.0.0.1',
  directory,
  silent: true,
  configureBuckets: [{ name: bucket }],
});
const { port } = await server.run();
console.log(`http://127.0.0.1:${port}`);
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
