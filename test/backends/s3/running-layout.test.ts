import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { PathTemplate } from '@tasklog/core';
import { afterAll, beforeAll } from 'vitest';
import { describeRunningLayout } from '../../support/running-layout.js';
import { type S3rverFixture, startS3rver } from '../../support/s3rver.js';

let server: S3rverFixture;
let raw: S3Client;
let prefixes = 0;

beforeAll(async () => {
  server = await startS3rver('running-layout');
  raw = new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
});

afterAll(async () => {
  raw?.destroy();
  await server?.close();
});

describeRunningLayout('S3Store', async () => {
  const prefix = `logs/layout-${prefixes++}`;
  const template = new PathTemplate();
  return {
    store: server.openStore(prefix),
    finalName: (key) => `${prefix}/${template.render(key)}`,
    put: async (name, bytes) => {
      await raw.send(new PutObjectCommand({ Bucket: server.bucket, Key: name, Body: bytes }));
    },
    names: async (p) => (await server.listKeys(p)).sort(),
    legacyMarker: { name: '00000000000000000000.chunk', bytes: Buffer.alloc(0) },
    cleanup: async () => {},
  };
});
