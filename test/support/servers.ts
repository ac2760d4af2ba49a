import { randomBytes } from 'node:crypto';
import { afterAll } from 'vitest';

/**
 * One server (an emulator, s3rver) for a whole test file: started when it is first asked for,
 * closed after the file's last test. Tests get a store of their own on it by a fresh name.
 */
export function sharedServer<T extends { close(): Promise<void> }>(
  start: () => Promise<T>,
): () => Promise<T> {
  let server: Promise<T> | undefined;
  afterAll(async () => {
    await (await server)?.close();
  });
  return () => {
    server ??= start();
    return server;
  };
}

/** A name no other test uses (a bucket, an index, a log), so each test starts empty. */
export function freshName(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}
