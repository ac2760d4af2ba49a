import { type ExpressionBuilder, type Kysely, type SqlBool, sql } from 'kysely';
import { validateId } from '../attempt-key.js';
import { InvalidInputError } from '../errors.js';
import type {
  AttemptState,
  DagGroup,
  GroupLevel,
  GroupPage,
  GroupQuery,
  GroupsOf,
  RunGroup,
  TaskGroup,
} from './catalog.js';
import type { CatalogDatabase } from './sql-catalog.js';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 10_000;

/** What the grouping queries need to know about the database they run on. */
export interface GroupsDialect {
  /**
   * How a DAG grant pattern is matched, case-sensitively: SQLite's LIKE ignores ASCII case, so
   * there it is GLOB (whose `*` and `?` are the grants' own wildcards); PostgreSQL's LIKE is
   * case-sensitive.
   */
  patterns: 'glob' | 'like';
  /** Collation the ids are ordered by among groups updated at the same instant; see SqlCatalog. */
  keyCollation?: string;
}

type Where = ExpressionBuilder<CatalogDatabase, 'attempts'>;
type IdColumn = 'dag_id' | 'run_id' | 'task_id';

/** `text` as a LIKE pattern that matches it literally, with `\` as the escape character. */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, '\\$&');

/** A grant pattern (`*`, `?` wildcards, everything else literal) as a LIKE or GLOB pattern. */
function grantPattern(pattern: string, dialect: GroupsDialect): string {
  if (dialect.patterns === 'glob') return pattern.replace(/\[/g, '[[]');
  return likeLiteral(pattern).replace(/\*/g, '%').replace(/\?/g, '_');
}

/**
 * The DAG grants as one SQL condition; undefined when they allow every DAG. Exact names become
 * one `IN` list; patterns are bound parameters, never spliced into the SQL text. Also retention's
 * `--dag` filter (catalog-finished.ts).
 */
export function grantCondition(eb: Where, grants: readonly string[], dialect: GroupsDialect) {
  if (grants.some((g) => /^\*+$/.test(g))) return undefined;
  const exact = grants.filter((g) => !/[*?]/.test(g));
  const wild = grants.filter((g) => /[*?]/.test(g));
  const any = [
    ...(exact.length > 0 ? [eb('dag_id', 'in', exact)] : []),
    ...wild.map((g) =>
      dialect.patterns === 'glob'
        ? sql<SqlBool>`${sql.ref('dag_id')} glob ${grantPattern(g, dialect)}`
        : sql<SqlBool>`${sql.ref('dag_id')} like ${grantPattern(g, dialect)} escape '\\'`,
    ),
  ];
  return any.length === 0 ? sql<SqlBool>`1 = 0` : eb.or(any);
}

/** The filters every level shares: the grants, the scope above the level, and `q` on its id. */
function filtered(
  eb: Where,
  column: IdColumn,
  query: GroupQuery,
  dialect: GroupsDialect,
  scope: { dagId?: string; runId?: string },
) {
  const all = [];
  if (scope.dagId !== undefined) all.push(eb('dag_id', '=', scope.dagId));
  if (scope.runId !== undefined) all.push(eb('run_id', '=', scope.runId));
  if (query.dags !== undefined) {
    const grants = grantCondition(eb, query.dags, dialect);
    if (grants) all.push(grants);
  }
  if (query.q !== undefined && query.q !== '') {
    // lower() on both sides: PostgreSQL's LIKE is case-sensitive (SQLite's lower() folds ASCII
    // only, as its LIKE does).
    const pattern = `%${likeLiteral(query.q.toLowerCase())}%`;
    all.push(sql<SqlBool>`lower(${sql.ref(column)}) like ${pattern} escape '\\'`);
  }
  return eb.and(all);
}

function page(query: GroupQuery): { limit: number; offset: number } {
  const limit = query.limit ?? DEFAULT_LIMIT;
  const offset = query.offset ?? 0;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new InvalidInputError(`limit must be 1..${MAX_LIMIT}, got ${String(limit)}`);
  }
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new InvalidInputError(`offset must be a non-negative integer, got ${String(offset)}`);
  }
  return { limit, offset };
}

/** Counts and sums come back as strings from node-postgres (bigint, numeric). */
const num = (v: unknown) => Number(v ?? 0);

interface CountsRow {
  attempts: unknown;
  running: unknown;
  last_updated_at: string;
}

const counts = (r: CountsRow) => ({
  attempts: num(r.attempts),
  running: num(r.running),
  lastUpdatedAt: new Date(r.last_updated_at),
});

/**
 * `Catalog.groups` for SqlCatalog: one grouped query per page, newest group first. One row more
 * than the page is fetched to know whether another page follows.
 */
export async function queryGroups<L extends GroupLevel>(
  db: Kysely<CatalogDatabase>,
  level: L,
  query: GroupQuery,
  dialect: GroupsDialect,
): Promise<GroupPage<GroupsOf[L]>> {
  const { limit, offset } = page(query);
  const text = (column: string) =>
    dialect.keyCollation === undefined
      ? sql.ref(column)
      : sql`${sql.ref(column)} collate ${sql.id(dialect.keyCollation)}`;
  const running = sql<unknown>`sum(case when ${sql.ref('state')} = 'running' then 1 else 0 end)`;
  const finish = <G>(rows: G[]): GroupPage<G> => ({
    groups: rows.slice(0, limit),
    next: rows.length > limit ? offset + limit : null,
  });

  if (level === 'dags') {
    const rows = await db
      .selectFrom('attempts')
      .where((eb) => filtered(eb, 'dag_id', query, dialect, {}))
      .select((eb) => [
        'dag_id',
        eb.fn.countAll().as('attempts'),
        running.as('running'),
        eb.fn.max('updated_at').as('last_updated_at'),
      ])
      .groupBy('dag_id')
      .orderBy('last_updated_at', 'desc')
      .orderBy(text('dag_id'))
      .limit(limit + 1)
      .offset(offset)
      .execute();
    const groups: DagGroup[] = rows.map((r) => ({ dagId: r.dag_id, ...counts(r) }));
    return finish(groups) as GroupPage<GroupsOf[L]>;
  }

  const dagId = validateId('dagId', query.dagId);
  if (level === 'runs') {
    const rows = await db
      .selectFrom('attempts')
      .where((eb) => filtered(eb, 'run_id', query, dialect, { dagId }))
      .select((eb) => [
        'run_id',
        eb.fn.countAll().as('attempts'),
        running.as('running'),
        eb.fn.max('updated_at').as('last_updated_at'),
      ])
      .groupBy('run_id')
      .orderBy('last_updated_at', 'desc')
      .orderBy(text('run_id'))
      .limit(limit + 1)
      .offset(offset)
      .execute();
    const groups: RunGroup[] = rows.map((r) => ({ runId: r.run_id, ...counts(r) }));
    return finish(groups) as GroupPage<GroupsOf[L]>;
  }

  if (level !== 'tasks') throw new InvalidInputError(`unknown level ${String(level)}`);
  const runId = validateId('runId', query.runId);
  const instances = db
    .selectFrom('attempts')
    .where((eb) => filtered(eb, 'task_id', query, dialect, { dagId, runId }))
    .select((eb) => [
      'task_id',
      'map_index',
      eb.fn.countAll().as('attempts'),
      running.as('running'),
      eb.fn.max('try_number').as('latest_try'),
      eb.fn.max('updated_at').as('last_updated_at'),
    ])
    .groupBy(['task_id', 'map_index'])
    .as('g');
  // The latest try's own row, for its state and size.
  const rows = await db
    .selectFrom(instances)
    .innerJoin('attempts as a', (join) =>
      join
        .on('a.dag_id', '=', dagId)
        .on('a.run_id', '=', runId)
        .onRef('a.task_id', '=', 'g.task_id')
        .onRef('a.map_index', '=', 'g.map_index')
        .onRef('a.try_number', '=', 'g.latest_try'),
    )
    .select([
      'g.task_id',
      'g.map_index',
      'g.attempts',
      'g.running',
      'g.latest_try',
      'g.last_updated_at',
      'a.state',
      'a.size',
    ])
    .orderBy('g.last_updated_at', 'desc')
    .orderBy(text('g.task_id'))
    .orderBy('g.map_index')
    .limit(limit + 1)
    .offset(offset)
    .execute();
  const groups: TaskGroup[] = rows.map((r) => ({
    taskId: r.task_id,
    mapIndex: Number(r.map_index),
    latestTry: num(r.latest_try),
    state: r.state as AttemptState,
    size: r.size === null ? null : Number(r.size),
    ...counts(r),
  }));
  return finish(groups) as GroupPage<GroupsOf[L]>;
}
