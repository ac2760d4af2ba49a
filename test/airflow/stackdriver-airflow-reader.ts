import { spawn } from 'node:child_process';
import { once } from 'node:events';

/**
 * Airflow's read of a task's log from Cloud Logging, as the google provider's
 * `providers/google/src/airflow/providers/google/cloud/log/stackdriver_task_handler.py` does it
 * (the same in the 2.10-era `StackdriverTaskHandler` and 3.x's `StackdriverRemoteLogIO`):
 *
 * - `_task_instance_to_labels(ti)`: `{task_id, dag_id, execution_date | logical_date,
 *   try_number}` in that order, the date as `ti.<date>.isoformat()` and the try as `str()`;
 * - `prepare_log_filter(labels)`: `resource.type="<type>"`, `logName="projects/<p>/logs/<name>"`,
 *   `resource.labels.<k>="<v>"` for each resource label, `labels.<k>="<v>"` for each task label,
 *   joined by "\n"; keys holding a dot are quoted, values escape `\` and `"`;
 * - `_read_single_logs_page`: `ListLogEntriesRequest(resource_names=["projects/<p>"],
 *   filter=…, page_token=…, order_by="timestamp asc", page_size=1000)`; of each entry it keeps
 *   `json_payload["message"]` when the key exists, else a non-empty `text_payload`, and joins a
 *   page's messages with "\n";
 * - `read_logs(all_pages=True)` (3.x `read()`, 2.x downloads): every page, the pages' texts
 *   joined with "\n".
 *
 * Providers before the text_payload fallback kept `json_payload["message"]` only (`jsonOnly`).
 */

export type AirflowVersion = '2.10' | '3.x';

export interface AirflowTaskInstance {
  dagId: string;
  taskId: string;
  /** `ti.logical_date.isoformat()` (3.x) / `ti.execution_date.isoformat()` (2.x). */
  logicalDate: string;
  tryNumber: number;
}

export interface AirflowHandlerSettings {
  project: string;
  /** `gcp_log_name`; default `airflow`. */
  logName?: string;
  /** The handler's `resource`; default `global` without labels. */
  resource?: { type: string; labels: Record<string, string> };
}

/** `_task_instance_to_labels`, in Python's dict order. */
export function airflowLabels(
  version: AirflowVersion,
  ti: AirflowTaskInstance,
): [string, string][] {
  return [
    ['task_id', ti.taskId],
    ['dag_id', ti.dagId],
    [version === '3.x' ? 'logical_date' : 'execution_date', ti.logicalDate],
    ['try_number', String(ti.tryNumber)],
  ];
}

/** `prepare_log_filter`. */
export function airflowFilter(
  settings: AirflowHandlerSettings,
  labels: [string, string][],
): string {
  const key = (k: string) => (k.includes('.') ? `"${k}"` : k);
  const value = (v: string) => `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const resource = settings.resource ?? { type: 'global', labels: {} };
  return [
    `resource.type=${value(resource.type)}`,
    `logName="projects/${settings.project}/logs/${settings.logName ?? 'airflow'}"`,
    ...Object.entries(resource.labels).map(([k, v]) => `resource.labels.${key(k)}=${value(v)}`),
    ...labels.map(([k, v]) => `labels.${key(k)}=${value(v)}`),
  ].join('\n');
}

/** The body of the `entries:list` call for one page (REST form of ListLogEntriesRequest). */
export function airflowListRequest(
  settings: AirflowHandlerSettings,
  filter: string,
  pageToken?: string,
): Record<string, unknown> {
  return {
    resourceNames: [`projects/${settings.project}`],
    filter,
    orderBy: 'timestamp asc',
    pageSize: 1000,
    ...(pageToken ? { pageToken } : {}),
  };
}

interface RestEntry {
  textPayload?: string;
  jsonPayload?: Record<string, unknown>;
}

/** `_read_single_logs_page`'s choice for one entry; undefined = skipped. */
export function airflowKeeps(entry: RestEntry, jsonOnly = false): string | undefined {
  if (entry.jsonPayload && 'message' in entry.jsonPayload) return String(entry.jsonPayload.message);
  if (!jsonOnly && entry.textPayload) return entry.textPayload;
  return undefined;
}

/** One POST of `body` to `<restUrl>/v2/entries:list`. */
export type ListCall = (body: Record<string, unknown>) => Promise<{
  entries?: RestEntry[];
  nextPageToken?: string;
}>;

/** Posts with Node's fetch. */
export function fetchCall(restUrl: string): ListCall {
  return async (body) => {
    const res = await fetch(`${restUrl}/v2/entries:list`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`entries:list answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as { entries?: RestEntry[]; nextPageToken?: string };
  };
}

/** Posts with the `curl` binary, the body on its standard input. */
export function curlCall(restUrl: string): ListCall {
  return async (body) => {
    const child = spawn(
      'curl',
      [
        '--silent',
        '--show-error',
        '--fail-with-body',
        '-X',
        'POST',
        '-H',
        'Content-Type: application/json',
        '--data-binary',
        '@-',
        `${restUrl}/v2/entries:list`,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    child.stdin.end(JSON.stringify(body));
    const [code] = (await once(child, 'close')) as [number | null];
    if (code !== 0) throw new Error(`curl exited with ${code}: ${err}${Buffer.concat(out)}`);
    return JSON.parse(Buffer.concat(out).toString('utf8')) as {
      entries?: RestEntry[];
      nextPageToken?: string;
    };
  };
}

/**
 * What Airflow shows for a task instance's try: `read_logs(filter, None, all_pages=True)`.
 * Also returns the request bodies it sent, for inspection.
 */
export async function readLikeAirflow(
  call: ListCall,
  settings: AirflowHandlerSettings,
  version: AirflowVersion,
  ti: AirflowTaskInstance,
  options: { jsonOnly?: boolean } = {},
): Promise<{ text: string; requests: Record<string, unknown>[] }> {
  const filter = airflowFilter(settings, airflowLabels(version, ti));
  const pages: string[] = [];
  const requests: Record<string, unknown>[] = [];
  let token: string | undefined;
  do {
    const body = airflowListRequest(settings, filter, token);
    requests.push(body);
    const page = await call(body);
    const messages = (page.entries ?? [])
      .map((e) => airflowKeeps(e, options.jsonOnly))
      .filter((m): m is string => m !== undefined);
    pages.push(messages.join('\n'));
    token = page.nextPageToken || undefined;
  } while (token);
  return { text: pages.join('\n'), requests };
}
