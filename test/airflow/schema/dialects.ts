import { readFile } from 'node:fs/promises';
import type { AirflowDbKind, AirflowVersion } from '../airflow-fixture.js';

/**
 * The column types of Airflow's models that SQLAlchemy renders differently on PostgreSQL and on
 * SQLite, under the names the schema files give them; every other type is written as both
 * databases take it. What `airflow db migrate` leaves on each (checked against both DDLs).
 */
const TYPES = {
  // Integer, primary_key=True: PostgreSQL's autoincrement is SERIAL; on SQLite an INTEGER
  // primary key is the rowid.
  IntegerPk: { postgres: 'SERIAL', sqlite: 'INTEGER' },
  // airflow.utils.sqlalchemy.UtcDateTime: a TypeDecorator over TIMESTAMP(timezone=True).
  UtcDateTime: { postgres: 'TIMESTAMP WITH TIME ZONE', sqlite: 'TIMESTAMP' },
  // sqlalchemy.DateTime, without a time zone.
  DateTime: { postgres: 'TIMESTAMP WITHOUT TIME ZONE', sqlite: 'DATETIME' },
  // sqlalchemy.PickleType (and Airflow's ExecutorConfigType, one), LargeBinary underneath.
  PickleType: { postgres: 'BYTEA', sqlite: 'BLOB' },
  // JSON().with_variant(postgresql.JSONB, "postgresql"): 3.x dag_run.conf.
  JsonbVariant: { postgres: 'JSONB', sqlite: 'JSON' },
  // String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql"): 3.x ids of a try.
  UuidVariant: { postgres: 'UUID', sqlite: 'VARCHAR(36)' },
  // sqlalchemy_utils.UUIDType(binary=False): 3.x dag_version ids.
  UUIDType: { postgres: 'UUID', sqlite: 'CHAR(32)' },
} as const;

const TYPE_NAMES = new RegExp(`\\b(${Object.keys(TYPES).join('|')})\\b`, 'g');

/** Airflow's DDL for `version` as it stands on a `kind` database, comment lines left out. */
export async function airflowSchema(version: AirflowVersion, kind: AirflowDbKind): Promise<string> {
  const source = await readFile(new URL(`./airflow-${version}.sql`, import.meta.url), 'utf8');
  return source
    .split('\n')
    .filter((line) => !line.startsWith('--'))
    .join('\n')
    .replace(TYPE_NAMES, (name) => TYPES[name as keyof typeof TYPES][kind]);
}
