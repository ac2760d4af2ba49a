import { type Expression, type Kysely, type Selectable, type SqlBool, sql } from 'kysely';
import { attemptKey } from '../attempt-key.js';
import { InvalidInputError } from '../errors.js';
import {
  type AttemptState,
  FINISHED_STATES,
  type FinishedQuery,
  type FinishedState,
} from './catalog.js';
import { type GroupsDialect, grantCondition } from './catalog-groups.js';
import type { AttemptsTable, CatalogDatabase } from './sql-catalog.js';

const DEFAULT_LIMIT = 1000;
const MAX_LIMIT = 10_000;

/** The states a retention query asks for: FINISHED_STATES, or a subset of them. */
export function finishedStates(states: readonly string[] | undefined): FinishedState[] {
  if (states === undefined) return [...FINISHED_STATES];
  const bad = states.filter((s) => !(FINISHED_STATES as readonly string[]).includes(s));
  if (bad.length > 0 || states.length === 0) {
    throw new InvalidInputError(
      `states must be one or more of ${FINISHED_STATES.join(', ')} (finished attempts only), got ${bad.length > 0 ? bad.join(', ') : 'none'}`,
    );
  }
  return [...new Set(states as FinishedState[])];
}

function instant(field: string, value: unknown): string {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new InvalidInputError(`${field} must be a valid Date`);
  }
  return value.toISOString();
}

/**
 * `Catalog.listFinished` for SqlCatalog: one keyset-paged query, oldest `updated_at` first. The
 * cursor compares the whole order tuple (a row value, which SQLite 3.15+ and PostgreSQL both
 * speak) with the same collation the order uses, so each page starts exactly after the last.
 * One row more than the page is fetched to know whether another page follows.
 */
export async function queryFinished(
  db: Kysely<CatalogDatabase>,
  query: FinishedQuery,
  dialect: GroupsDialect,
): Promise<{ rows: Selectable<AttemptsTable>[]; last: boolean }> {
  const olderThan = instant('olderThan', query.olderThan);
  const states: AttemptState[] = finishedStates(query.states);
  const limit = query.limit ?? DEFAULT_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new InvalidInputError(`limit must be 1..${MAX_LIMIT}, got ${String(limit)}`);
  }
  const after = query.after;
  const afterKey = after === undefined ? undefined : attemptKey(after.key);
  const afterAt = after === undefined ? undefined : instant('after.updatedAt', after.updatedAt);
  const text = (column: 'dag_id' | 'run_id' | 'task_id') =>
    dialect.keyCollation === undefined
      ? sql.ref(column)
      : sql`${sql.ref(column)} collate ${sql.id(dialect.keyCollation)}`;

  const rows = await db
    .selectFrom('attempts')
    .selectAll()
    .where((eb) => {
      const all: Expression<SqlBool>[] = [
        eb('state', 'in', states),
        // ISO-8601 UTC text compares chronologically.
        eb('updated_at', '<', olderThan),
      ];
      if (query.dags !== undefined) {
        const dags = grantCondition(eb, query.dags, dialect);
        if (dags) all.push(dags);
      }
      if (afterKey !== undefined && afterAt !== undefined) {
        all.push(
          sql<SqlBool>`(${sql.ref('updated_at')}, ${text('dag_id')}, ${text('run_id')}, ${text('task_id')}, ${sql.ref('map_index')}, ${sql.ref('try_number')}) > (${afterAt}, ${afterKey.dagId}, ${afterKey.runId}, ${afterKey.taskId}, ${afterKey.mapIndex}, ${afterKey.tryNumber})`,
        );
      }
      return eb.and(all);
    })
    .orderBy('updated_at')
    .orderBy(text('dag_id'))
    .orderBy(text('run_id'))
    .orderBy(text('task_id'))
    .orderBy('map_index')
    .orderBy('try_number')
    .limit(limit + 1)
    .execute();
  return { rows: rows.slice(0, limit), last: rows.length <= limit };
}
