import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/** The part of node-postgres the helper uses (its types, @types/pg, belong to @tasklog/core). */
interface PgClient {
  connect(): Promise<void>;
  query(text: string): Promise<unknown>;
  end(): Promise<void>;
}
const pg = createRequire(import.meta.url)('pg') as {
  Client: new (options: { connectionString: string }) => PgClient;
};

export interface PostgresFixture {
  /** `postgres://user@127.0.0.1:PORT/database`: an empty database of its own. */
  url: string;
  /** `server`: a real PostgreSQL (TASKLOG_TEST_POSTGRES_URL); `pglite`: in-process PGlite. */
  kind: 'server' | 'pglite';
  /** Drops the database (server) or stops PGlite. */
  close(): Promise<void>;
}

/**
 * An empty PostgreSQL database for one test. With `TASKLOG_TEST_POSTGRES_URL` set (by `.ci/run`,
 * from `.ci/postgres.sh`) it creates a fresh database on that server; otherwise it starts PGlite
 * in-process behind a socket on 127.0.0.1, so the tests pass on a machine without PostgreSQL.
 *
 * PGlite is one backend session shared by every connection: session state such as advisory locks
 * is shared too, so tests of concurrency between connections only mean something on a server.
 */
export async function startPostgres(): Promise<PostgresFixture> {
  const serverUrl = process.env.TASKLOG_TEST_POSTGRES_URL;
  return serverUrl ? createDatabase(serverUrl) : startPglite();
}

async function createDatabase(serverUrl: string): Promise<PostgresFixture> {
  const name = `tasklog_test_${randomBytes(6).toString('hex')}`;
  await withClient(serverUrl, async (c) => {
    // A natural-language collation (as most production databases have), so tests see where
    // PostgreSQL's order differs from SQLite's byte order; plain when the server lacks ICU.
    await c
      .query(
        `create database ${name} template template0 encoding 'UTF8' locale_provider icu icu_locale 'en-US' locale 'C.UTF-8'`,
      )
      .catch(() => c.query(`create database ${name}`));
  });
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    kind: 'server',
    // FORCE: a test that failed midway may leave a pooled connection open.
    close: () =>
      withClient(serverUrl, (c) => c.query(`drop database if exists ${name} with (force)`)),
  };
}

async function withClient(url: string, fn: (client: PgClient) => Promise<unknown>): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await fn(client);
  } finally {
    await client.end();
  }
}

async function startPglite(): Promise<PostgresFixture> {
  const db = await PGlite.create();
  // Port 0: the OS picks a free port; the server reads it back once listening.
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 100 });
  await server.start();
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    kind: 'pglite',
    async close() {
      await server.stop();
      await db.close();
    },
  };
}
