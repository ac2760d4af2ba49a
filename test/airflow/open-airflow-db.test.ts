import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { inspect } from 'node:util';
import { BackendUnavailableError, InvalidInputError, openAirflowDb } from '@tasklog/core';
import { describe, expect, it } from 'vitest';
import { startPostgres } from '../support/postgres.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { AirflowDbFixture, Sqlite } from './airflow-fixture.js';

// Opening Airflow's database: the URLs openAirflowDb takes and refuses, and how it says why;
// reading one is in airflow-db.test.ts.
describe('openAirflowDb', () => {
  it('gives BackendUnavailableError for an unreachable PostgreSQL, with the password masked', async () => {
    const port = await freePort();
    const url = `postgresql+psycopg2://airflow:Sup3r-s3cret@127.0.0.1:${port}/airflow`;
    const err = await openAirflowDb(url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toContain(`postgresql+psycopg2://airflow:***@127.0.0.1:${port}`);
    expect((err as Error).cause).toBeDefined();
    // Nowhere: not in the message, not in the cause chain.
    expect(inspect(err, { depth: 10 })).not.toContain('Sup3r-s3cret');
  });

  it('masks a password holding an unescaped @', async () => {
    const port = await freePort();
    const err = await openAirflowDb(`postgres://airflow:p@ss-w0rd@127.0.0.1:${port}/airflow`).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect(inspect(err, { depth: 10 })).not.toContain('ss-w0rd');
    expect((err as Error).message).toContain(`postgres://airflow:***@127.0.0.1:${port}/airflow`);
  });

  it('refuses a MySQL URL with InvalidInputError', async () => {
    const err = await openAirflowDb('mysql+mysqldb://airflow:secret@db/airflow').catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidInputError);
    expect((err as Error).message).not.toContain('secret');
  });

  it('refuses an in-memory SQLite URL with InvalidInputError', async () => {
    await expect(openAirflowDb('sqlite://')).rejects.toBeInstanceOf(InvalidInputError);
    await expect(openAirflowDb('sqlite:///:memory:')).rejects.toBeInstanceOf(InvalidInputError);
  });

  it('gives BackendUnavailableError for a SQLite file that does not exist', async () => {
    const err = await openAirflowDb('sqlite:////nonexistent/tasklog/airflow.db').catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BackendUnavailableError);
    expect((err as Error).message).toContain('/nonexistent/tasklog/airflow.db');
  });

  it('refuses a SQLite database without a task_instance table, saying what to do', async () => {
    await withSqlite('CREATE TABLE other (a INTEGER)', async (url) => {
      const err = await openAirflowDb(url).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as Error).message).toMatch(/no task_instance table.*sql_alchemy_conn/);
    });
  });

  it('refuses an Airflow older than 2.10, which has no task_instance_history', async () => {
    await withSqlite(
      `CREATE TABLE task_instance (dag_id VARCHAR(250), run_id VARCHAR(250),
         task_id VARCHAR(250), map_index INTEGER, try_number INTEGER, state VARCHAR(20))`,
      async (url) => {
        const err = await openAirflowDb(url).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(InvalidInputError);
        expect((err as Error).message).toContain('older than Airflow 2.10');
      },
    );
  });

  it('refuses a PostgreSQL database without a task_instance table', async () => {
    const postgres = await startPostgres();
    try {
      const err = await openAirflowDb(postgres.url).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InvalidInputError);
      expect((err as Error).message).toContain('no task_instance table');
    } finally {
      await postgres.close();
    }
  });

  it('reads a relative sqlite:/// URL from the working directory', async () => {
    const airflow = await AirflowDbFixture.create('2.10', 'sqlite');
    const cwd = process.cwd();
    try {
      const path = airflow.url.slice('sqlite:///'.length);
      process.chdir(dirname(path));
      const db = await openAirflowDb('sqlite:///airflow.db');
      await db.close();
      expect(db.schema).toBe('2');
    } finally {
      process.chdir(cwd);
      await airflow.close();
    }
  });
});

async function withSqlite(ddl: string, fn: (url: string) => Promise<void>): Promise<void> {
  const dir = await makeTempDir('airflow');
  try {
    const path = join(dir, 'airflow.db');
    const sqlite = new Sqlite(path);
    sqlite.exec(ddl);
    sqlite.close();
    await fn(`sqlite:///${path}`);
  } finally {
    await removeTempDir(dir);
  }
}

/** A port nothing listens on: the OS hands one out, the server closes it again. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
