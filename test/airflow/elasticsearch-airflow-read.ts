import { parseJson, stringifyJson } from '../emulators/elasticsearch/index.js';

/**
 * Airflow's Elasticsearch task handler reading one attempt, replayed over HTTP: the requests it
 * sends and what its UI then shows. From apache/airflow (main, 2025),
 * `providers/elasticsearch/src/airflow/providers/elasticsearch/log/es_task_handler.py`, whose
 * branches on `AIRFLOW_V_3_0_PLUS` make the 2.10 and 3.x behaviour:
 *
 * - `ElasticsearchRemoteLogIO._es_read(log_id, offset)`: query
 *   `{"bool": {"filter": [{"range": {offset_field: {"gt": int(offset)}}}],
 *   "must": [{"match_phrase": {"log_id": log_id}}]}}`; `count(index=index_patterns, query)`;
 *   when not 0, `search(index, query, sort=[offset_field], size=1000, from_=0)`.
 * - `ElasticsearchTaskHandler._read`: hits grouped by `host_field` (`getattr_nested`, else the
 *   handler's Elasticsearch host), `metadata["offset"] = str(<offset of the last hit>)`, the
 *   log has ended when the last hit of any host group has the end mark as `message` (2.x) or
 *   `event` (3.x). The UI (and `read_log_stream`) calls `_read` again with that offset until
 *   the end, appending each answer.
 * - 2.x shows per host `"\n".join(_format_msg(hit) ...)` with the end-mark hit left out
 *   (`concat_logs`); `_format_msg` is `hit.message` (with `json_format` it first tries the
 *   `[logging] log_format` over the hit's fields).
 * - 3.x shows rows: a `::group::Log message source details` row (`sources`: the hosts) and an
 *   `::endgroup::` row, then for every hit a `StructuredLogMessage` of its fields named
 *   `timestamp`, `event`, `level`, `chan`, `logger` — the end-mark hit included.
 */
export interface AirflowEsReadOptions {
  /** The cluster, `http://host:port`. */
  url: string;
  logId: string;
  version: '2.10' | '3.x';
  /** `[elasticsearch] index_patterns`; Airflow's default is `_all`. */
  indexPatterns?: string;
  endOfLogMark?: string;
  hostField?: string;
  /** The handler's own host, used for hits without `host_field`. */
  host?: string;
}

export interface AirflowEsView {
  /** 2.x: one entry per `_read` answer, its `(host, text)` pairs. */
  pages2: [string, string][][];
  /** 3.x: every row shown, in order (header rows included). */
  rows3: Record<string, unknown>[];
  /** `metadata["offset"]` after each answer, exactly (a string, as Airflow keeps it). */
  offsets: string[];
  /** `metadata["end_of_log"]` after the last answer. */
  endOfLog: boolean;
  /** What the reader sees as one text: 2.x the page texts joined by "\n"; 3.x the `event`s of the log rows. */
  text: string;
}

const TASK_LOG_FIELDS = ['timestamp', 'event', 'level', 'chan', 'logger'];
const MAX_LINE_PER_PAGE = 1000;

type Source = Record<string, unknown>;

/** `_es_read` with the exact request bodies, over plain HTTP (offsets stay exact past 2^53). */
export async function airflowEsRead(
  options: AirflowEsReadOptions,
  offset: bigint,
): Promise<Source[] | undefined> {
  const index = options.indexPatterns ?? '_all';
  const query = {
    bool: {
      filter: [{ range: { offset: { gt: offset } } }],
      must: [{ match_phrase: { log_id: options.logId } }],
    },
  };
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${options.url}/${index}/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: stringifyJson(body),
    });
    const answer = parseJson(await res.text()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${stringifyJson(answer)}`);
    return answer;
  };
  const count = (await post('_count', { query })).count;
  if (count === 0) return undefined;
  const res = (await post('_search', {
    query,
    sort: ['offset'],
    size: MAX_LINE_PER_PAGE,
    from: 0,
  })) as { hits: { hits: { _source: Source }[] } };
  return res.hits.hits.map((h) => h._source);
}

/** Airflow's UI reading the attempt from the start until the end mark or no new hits. */
export async function readLikeAirflow(options: AirflowEsReadOptions): Promise<AirflowEsView> {
  const mark = (options.endOfLogMark ?? 'end_of_log').trim();
  const hostField = options.hostField ?? 'host';
  const textField = options.version === '2.10' ? 'message' : 'event';
  const view: AirflowEsView = { pages2: [], rows3: [], offsets: [], endOfLog: false, text: '' };
  const texts: string[] = [];
  let offset = 0n;
  for (let round = 0; round < 10_000; round++) {
    const hits = await airflowEsRead(options, offset);
    if (!hits || hits.length === 0) break;
    const groups = new Map<string, Source[]>();
    hits.forEach((hit, i) => {
      const value = nested(hit, hostField) || options.host || 'http://localhost:9200';
      // An object (Filebeat's `host` with host_field = host) is hashed by identity in Airflow:
      // every hit is a group of its own.
      const host =
        typeof value === 'object' ? `${stringifyJson(value)}#${round}.${i}` : String(value);
      const group = groups.get(host) ?? [];
      group.push(hit);
      groups.set(host, group);
    });
    offset = BigInt(hits.at(-1)!.offset as number | bigint);
    view.offsets.push(offset.toString());
    // `x[-1].message` raises AttributeError on a hit without the field: the read fails.
    const shown = (hit: Source) => {
      if (!(textField in hit))
        throw new Error(`AttributeError: '${textField}' (hit ${stringifyJson(hit)})`);
      return hit[textField];
    };
    view.endOfLog = [...groups.values()].some((g) => shown(g.at(-1)!) === mark);
    if (options.version === '2.10') {
      const page: [string, string][] = [...groups].map(([host, g]) => {
        const kept = shown(g.at(-1)!) === mark ? g.slice(0, -1) : g;
        return [host, kept.map((h) => String(shown(h))).join('\n')];
      });
      view.pages2.push(page);
      texts.push(page.map(([, text]) => text).join('\n'));
    } else {
      view.rows3.push(
        { event: '::group::Log message source details', sources: [...groups.keys()] },
        { event: '::endgroup::' },
      );
      for (const g of groups.values()) {
        for (const hit of g) {
          const row = Object.fromEntries(
            Object.entries(hit).filter(([k]) => TASK_LOG_FIELDS.includes(k.toLowerCase())),
          );
          if (typeof row.event !== 'string') {
            throw new Error(
              `ValidationError: StructuredLogMessage needs event (hit ${stringifyJson(hit)})`,
            );
          }
          view.rows3.push(row);
          texts.push(row.event);
        }
      }
    }
    if (view.endOfLog) break;
  }
  view.text = texts.join('\n');
  return view;
}

/** `getattr_nested(hit, "a.b")`. */
function nested(source: Source, path: string): unknown {
  let value: unknown = source;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Source)[part];
  }
  return value;
}
