/**
 * Airflow's CloudWatch reads, replayed step by step from the amazon provider's source
 * (`providers/amazon/.../log/cloudwatch_task_handler.py`, `hooks/logs.py`) and Airflow 3's
 * `utils/log/file_task_handler.py`, so a test can assert what Airflow shows for a stream.
 */
import { type CloudWatchLogsClient, GetLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';

export interface CloudWatchLogEvent {
  timestamp: number;
  message: string;
}

/** `AwsLogsHook.get_log_events` stops after this many empty pages in a row (airflow#20814). */
const EMPTY_PAGES_TO_STOP = 3;

/**
 * The events Airflow reads for an attempt (`get_cloudwatch_logs` → `AwsLogsHook.get_log_events`):
 * GetLogEvents with `startTime=0`, `endTime` = the task's end date + 30 s when it has ended,
 * `startFromHead=True`, following `nextForwardToken` until it comes back unchanged (or three
 * empty pages in a row).
 */
export async function airflowLogEvents(
  client: CloudWatchLogsClient,
  group: string,
  stream: string,
  endDate?: Date,
): Promise<CloudWatchLogEvent[]> {
  const endTime = endDate === undefined ? undefined : endDate.getTime() + 30_000;
  const out: CloudWatchLogEvent[] = [];
  let token: string | undefined;
  let empty = 0;
  for (;;) {
    const res = await client.send(
      new GetLogEventsCommand({
        logGroupName: group,
        logStreamName: stream.replaceAll(':', '_'),
        startTime: 0,
        ...(endTime === undefined ? {} : { endTime }),
        startFromHead: true,
        ...(token === undefined ? {} : { nextToken: token }),
      }),
    );
    const events = res.events ?? [];
    for (const e of events) out.push({ timestamp: e.timestamp!, message: e.message! });
    if (token === res.nextForwardToken) return out;
    empty = events.length === 0 ? empty + 1 : 0;
    if (empty >= EMPTY_PAGES_TO_STOP) return out;
    token = res.nextForwardToken;
  }
}

/**
 * Airflow 2 (`CloudwatchTaskHandler._read_remote_logs`): one line per event, `_event_to_str`:
 * `[%Y-%m-%dT%H:%M:%SZ] message`; the log is these lines joined with "\n".
 */
export function airflow2Lines(events: readonly CloudWatchLogEvent[]): string[] {
  return events.map((e) => `[${new Date(e.timestamp).toISOString().slice(0, 19)}Z] ${e.message}`);
}

/**
 * What Airflow 2.10's UI makes of those lines (`FileTaskHandler._read` → `_interleave_logs`):
 * the text split with Python's `str.splitlines`, each line's time taken from its first word
 * (`[…]`, else the line before's), stably sorted by it, and a line equal to the one before it
 * dropped when it has a time.
 */
export function airflow2View(lines: readonly string[]): string[] {
  const records: { time: number | undefined; idx: number; line: string }[] = [];
  let time: number | undefined;
  for (const [idx, line] of pythonSplitlines(lines.join('\n')).entries()) {
    // `_parse_timestamps_in_log_file` yields only non-empty lines: Airflow 2 drops empty ones.
    if (!line) continue;
    const parsed = Date.parse(line.split(' ', 1)[0]!.replace(/^\[+|\]+$/g, ''));
    if (!Number.isNaN(parsed)) time = parsed;
    records.push({ time, idx, line });
  }
  const epoch2000 = Date.UTC(2000, 0, 1);
  records.sort((a, b) => (a.time ?? epoch2000) - (b.time ?? epoch2000) || a.idx - b.idx);
  const out: string[] = [];
  let last: string | undefined;
  for (const r of records) {
    if (r.line !== last || !r.time) out.push(r.line);
    last = r.line;
  }
  return out;
}

/** Python's `str.splitlines()`: every line boundary it knows, `\r\n` as one. */
export function pythonSplitlines(text: string): string[] {
  const parts = text.split(/\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/);
  if (parts.at(-1) === '') parts.pop();
  return parts;
}

/** A record of Airflow 3's log view (`StructuredLogMessage`): `event` is the line it shows. */
export interface StructuredLogMessage {
  timestamp: string | null;
  event: string;
  [extra: string]: unknown;
}

/**
 * Airflow 3: `CloudWatchRemoteLogIO._parse_log_event_as_dumped_json` (a message that
 * `json.loads` makes a dict keeps its fields, `timestamp` set to the event's; anything else
 * becomes `{"timestamp", "event": message}`), dumped, then `StructuredLogMessage.model_validate_json`
 * (needs a string `event`, else the dumped line itself is the event), then `_interleave_logs`,
 * which drops a record equal to the one before it.
 */
export function airflow3Records(events: readonly CloudWatchLogEvent[]): StructuredLogMessage[] {
  const out: StructuredLogMessage[] = [];
  let last: string | undefined;
  for (const e of events) {
    const timestamp = pythonIsoformat(e.timestamp);
    let fields: Record<string, unknown>;
    const loaded = pythonJsonLoads(e.message);
    if (typeof loaded === 'object' && loaded !== null && !Array.isArray(loaded)) {
      fields = { ...(loaded as Record<string, unknown>), timestamp };
    } else {
      fields = { timestamp, event: e.message };
    }
    const record: StructuredLogMessage =
      typeof fields.event === 'string'
        ? (fields as StructuredLogMessage)
        : { timestamp: null, event: pythonJsonDumps(fields) };
    const same = JSON.stringify(record);
    if (same === last && record.timestamp !== null) continue; // the dedupe of _flush_logs_out_of_heap
    last = same;
    out.push(record);
  }
  return out;
}

/** `datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).isoformat()`. */
export function pythonIsoformat(ms: number): string {
  const iso = new Date(ms).toISOString();
  const frac = ms % 1000;
  return `${iso.slice(0, 19)}${frac === 0 ? '' : `.${String(frac * 1000).padStart(6, '0')}`}+00:00`;
}

/** `json.loads`, or undefined where it raises. */
function pythonJsonLoads(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `json.dumps` with its defaults: `", "` and `": "` separators, non-ASCII as `\uXXXX`. */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    return JSON.stringify(value).replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  }
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  const entries = Object.entries(value as Record<string, unknown>);
  return `{${entries.map(([k, v]) => `${pythonJsonDumps(k)}: ${pythonJsonDumps(v)}`).join(', ')}}`;
}
