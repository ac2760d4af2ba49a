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

/** A line `@define NAME` starts block NAME, `@end` ends it; a line `@NAME` stands for its lines. */
const DEFINE = /^@define (\w+)$/;
const USE = /^\s*@(\w+)$/;

/** The lines of `source` outside its blocks; the blocks go into `blocks`, by name. */
function takeBlocks(source: string, blocks: Map<string, string[]>): string[] {
  const rest: string[] = [];
  let block: string[] | undefined;
  for (const line of source.split('\n')) {
    const define = DEFINE.exec(line);
    if (define) {
      block = [];
      blocks.set(define[1]!, block);
    } else if (line === '@end') block = undefined;
    else (block ?? rest).push(line);
  }
  return rest;
}

/** `lines` with every `@NAME` line replaced by the lines of block NAME, written out in turn. */
function writeOut(lines: string[], blocks: Map<string, string[]>): string[] {
  return lines.flatMap((line) => {
    const name = USE.exec(line)?.[1];
    if (name === undefined) return [line];
    const block = blocks.get(name);
    if (!block) throw new Error(`the Airflow schema files define no block ${name}`);
    return writeOut(block, blocks);
  });
}

const readSchemaFile = (name: string) => readFile(new URL(`./${name}`, import.meta.url), 'utf8');

/**
 * Airflow's DDL for `version` as it stands on a `kind` database: its file with the blocks written
 * out (its own and task-instance-common.sql's), comment lines and blank lines between the
 * statements left out.
 */
export async function airflowSchema(version: AirflowVersion, kind: AirflowDbKind): Promise<string> {
  const blocks = new Map<string, string[]>();
  takeBlocks(await readSchemaFile('task-instance-common.sql'), blocks);
  const lines = takeBlocks(await readSchemaFile(`airflow-${version}.sql`), blocks);
  return writeOut(lines, blocks)
    .filter((line) => line.trim() !== '' && !line.startsWith('--'))
    .map((line) => `${line}\n`)
    .join('')
    .replace(TYPE_NAMES, (name) => TYPES[name as keyof typeof TYPES][kind]);
}
