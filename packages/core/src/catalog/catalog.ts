import type { AttemptKey } from '../attempt-key.js';
import type { AttemptFilter } from '../path-template.js';

/**
 * Where an attempt is in its life. `running`: a worker is writing it; `shipping`: the shipper is
 * uploading a finished log; `shipped`: the archive holds a verified copy; `failed`: shipping gave up;
 * `abandoned`: the writer went idle or its heartbeat stopped without a completion marker (what the
 * archive holds is all there is, unless the writer comes back).
 */
export type AttemptState = 'running' | 'shipping' | 'shipped' | 'failed' | 'abandoned';

/**
 * The states retention may delete: the attempt's writer is done with it. `running` (a writer is
 * at work) and `shipping` (an upload is under way, or died and will be resumed) never are.
 * `abandoned` is included: if its writer does come back, it turns `running` again first.
 */
export const FINISHED_STATES = ['shipped', 'failed', 'abandoned'] as const;

/** A state in FINISHED_STATES. */
export type FinishedState = (typeof FINISHED_STATES)[number];

/** One attempt as the catalog records it. */
export interface AttemptRecord {
  /** The attempt. */
  readonly key: AttemptKey;
  /** Relative path under the base log folder / the store's prefix. */
  readonly relativePath: string;
  /** Where the attempt is in its life. */
  readonly state: AttemptState;
  /** Bytes in the log, once known. */
  readonly size: number | null;
  /** Lower-case hex sha256 of the whole log, once known. */
  readonly sha256: string | null;
  /** URL of the store holding the archived log. */
  readonly storeUrl: string | null;
  /** URL of the agent serving the live log (issue 5). */
  readonly agentUrl: string | null;
  /** When the catalog first saw the attempt. */
  readonly createdAt: Date;
  /** When the record last changed. */
  readonly updatedAt: Date;
  /** When the archive copy was verified. */
  readonly shippedAt: Date | null;
  /** When the shipper following the attempt last said it was alive. */
  readonly heartbeatAt: Date | null;
  /** Airflow's state of this try when it ended (`success`, `failed`, `up_for_retry`…), where known. */
  readonly airflowState: string | null;
  /** The task process's exit code, where known (`tasklog run`'s completion marker). */
  readonly exitCode: number | null;
}

/** Fields a writer may set; omitted fields keep their stored value. */
export interface AttemptPatch {
  /** See AttemptRecord.relativePath. */
  relativePath?: string;
  /** See AttemptRecord.state. */
  state?: AttemptState;
  /** See AttemptRecord.size. */
  size?: number | null;
  /** See AttemptRecord.sha256. */
  sha256?: string | null;
  /** See AttemptRecord.storeUrl. */
  storeUrl?: string | null;
  /** See AttemptRecord.agentUrl. */
  agentUrl?: string | null;
  /** See AttemptRecord.shippedAt. */
  shippedAt?: Date | null;
  /** See AttemptRecord.heartbeatAt. */
  heartbeatAt?: Date | null;
  /** See AttemptRecord.airflowState. */
  airflowState?: string | null;
  /** See AttemptRecord.exitCode. */
  exitCode?: number | null;
}

/** Options of `Catalog.list`. */
export interface CatalogListOptions {
  /** At most this many records (default 1000). */
  limit?: number;
}

/** What a level of the attempt browser groups attempts by: DAGs, a DAG's runs, a run's tasks. */
export type GroupLevel = 'dags' | 'runs' | 'tasks';

/** What every group tells: how many attempts it holds, how many run, and when one last changed. */
interface GroupCounts {
  /** Attempts in the group. */
  readonly attempts: number;
  /** Of those, attempts in state `running`. */
  readonly running: number;
  /** The latest `updatedAt` among the group's attempts: the groups' order, newest first. */
  readonly lastUpdatedAt: Date;
}

/** One DAG with attempts in the catalog. */
export interface DagGroup extends GroupCounts {
  readonly dagId: string;
}

/** One run of a DAG. */
export interface RunGroup extends GroupCounts {
  readonly runId: string;
}

/** One task instance (task and map index) of a run, with its latest try's state and size. */
export interface TaskGroup extends GroupCounts {
  readonly taskId: string;
  readonly mapIndex: number;
  /** The highest try number recorded. */
  readonly latestTry: number;
  /** The latest try's state. */
  readonly state: AttemptState;
  /** The latest try's size, once known. */
  readonly size: number | null;
}

/** The group type of each level. */
export interface GroupsOf {
  dags: DagGroup;
  runs: RunGroup;
  tasks: TaskGroup;
}

/** Which groups `Catalog.groups` lists, and which page of them. */
export interface GroupQuery {
  /** The DAG whose runs (level `runs`) or whose run's tasks (level `tasks`) are listed. */
  dagId?: string;
  /** The run whose tasks are listed (level `tasks`). */
  runId?: string;
  /** Only groups whose id (dagId, runId or taskId) holds this text, ignoring case. */
  q?: string;
  /** At most this many groups (1..10,000, default 100). */
  limit?: number;
  /** Groups skipped first (default 0). */
  offset?: number;
  /**
   * Only DAGs matching one of these patterns (`*` any run of characters, `?` one character,
   * case-sensitive, as a principal's grants), applied in the query so counts and pages hold
   * granted DAGs only. Undefined: every DAG; empty: none.
   */
  dags?: readonly string[];
}

/** A page of groups; `next` is the offset of the next page, or null after the last one. */
export interface GroupPage<G> {
  readonly groups: G[];
  readonly next: number | null;
}

/** Which finished attempts `Catalog.listFinished` lists, and which page of them. */
export interface FinishedQuery {
  /** Only attempts whose record last changed (`updatedAt`) before this instant. */
  olderThan: Date;
  /** Only DAGs matching one of these patterns (`*`, `?`, as `GroupQuery.dags`); undefined: all. */
  dags?: readonly string[];
  /** Only these states (default: every finished state); `running`/`shipping` are refused. */
  states?: readonly FinishedState[];
  /** At most this many records (1..10,000, default 1000). */
  limit?: number;
  /** The page after this record: the previous page's `next`. */
  after?: FinishedCursor;
}

/** Where a page of `listFinished` ended: the last record's `updatedAt` and key. */
export interface FinishedCursor {
  readonly updatedAt: Date;
  readonly key: AttemptKey;
}

/** A page of finished attempts, oldest first; `next` is null after the last page. */
export interface FinishedPage {
  readonly records: AttemptRecord[];
  readonly next: FinishedCursor | null;
}

/** Options of `Catalog.delete`: conditions the record must still meet when it is deleted. */
export interface CatalogDeleteOptions {
  /** Delete only while the record's state is one of these. */
  states?: readonly AttemptState[];
  /** Delete only while the record last changed before this instant. */
  olderThan?: Date;
}

/** The SQL catalog of attempts. Errors: BackendUnavailableError (with cause), InvalidInputError. */
export interface Catalog {
  /** The catalog URL with any password masked. */
  readonly url: string;
  /** Inserts the attempt or updates the given fields; `relativePath` is required on insert. */
  upsert(key: AttemptKey, patch: AttemptPatch & { relativePath: string }): Promise<AttemptRecord>;
  /** The attempt's record, or undefined when the catalog has none. */
  get(key: AttemptKey): Promise<AttemptRecord | undefined>;
  /** Ordered by dagId, runId, taskId, mapIndex, tryNumber. */
  list(filter: AttemptFilter, options?: CatalogListOptions): Promise<AttemptRecord[]>;
  /** The highest tryNumber recorded for the task instance, if any. */
  latestTry(filter: {
    dagId: string;
    runId: string;
    taskId: string;
    mapIndex: number;
  }): Promise<number | undefined>;
  /**
   * The attempt browser's groups at `level`, newest first (by their latest `updatedAt`, then by
   * id): `dags`; `runs` of `query.dagId`; `tasks` of `query.dagId`'s run `query.runId`.
   * InvalidInputError when the level's scope is missing, or for a bad limit or offset.
   */
  groups<L extends GroupLevel>(level: L, query?: GroupQuery): Promise<GroupPage<GroupsOf[L]>>;
  /**
   * Marks a `running` attempt `abandoned` if its heartbeat is older than `heartbeatBefore` (or
   * missing), in one conditional update, so a late heartbeat is never overwritten. Returns the
   * updated record, or undefined when nothing changed.
   */
  abandonIfStale(key: AttemptKey, heartbeatBefore: Date): Promise<AttemptRecord | undefined>;
  /**
   * Finished attempts (FINISHED_STATES) last changed before `query.olderThan`, oldest first (by
   * `updatedAt`, then by key), one page at a time: retention's candidates. The cursor is a
   * position, not an offset, so deleting the records of a page does not skip any of the next.
   * InvalidInputError for a state that is not finished, a bad date or limit.
   */
  listFinished(query: FinishedQuery): Promise<FinishedPage>;
  /**
   * Removes the attempt's record, in one conditional statement when `options` are given (so a
   * record that was resumed or changed meanwhile stays). Returns the removed record, or undefined
   * when there was none or it did not meet the conditions. Never touches the store.
   */
  delete(key: AttemptKey, options?: CatalogDeleteOptions): Promise<AttemptRecord | undefined>;
  /** Throws BackendUnavailableError when the database cannot be queried. */
  ping(): Promise<void>;
  /** Closes the database connection(s). */
  close(): Promise<void>;
}
