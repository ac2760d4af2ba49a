import { type AttemptState, type ErrorCode, MAX_ID_LENGTH } from '@tasklog/core';
import { HTTP_ONLY_ERRORS, HTTP_STATUS } from '../http-errors.js';
import { MAX_LIMIT as ATTEMPTS_MAX_LIMIT } from '../routes/attempts-route.js';
import { MAX_LIMIT as BROWSE_MAX_LIMIT } from '../routes/browse-route.js';
import { MAX_LIMIT as SEARCH_MAX_LIMIT } from '../routes/search-route.js';
import { EXCERPT_CHARS } from '../search/utf8-offsets.js';

/** A JSON Schema (2020-12) or another part of the OpenAPI document, as plain data. */
export type Json = Record<string, unknown>;

export const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

const nullable = (type: string, more: Json = {}): Json => ({ type: [type, 'null'], ...more });
const offset: Json = { type: 'integer', minimum: 0 };
const count: Json = { type: 'integer', minimum: 0 };
const dateTime: Json = { type: 'string', format: 'date-time' };

/** An object whose every property is required and no other is allowed. */
function record(properties: Record<string, Json>, description?: string): Json {
  return {
    type: 'object',
    ...(description ? { description } : {}),
    required: Object.keys(properties),
    additionalProperties: false,
    properties,
  };
}

// A Record over the union, so that a state added to the catalog fails to compile until listed.
const STATES: Record<AttemptState, true> = {
  running: true,
  shipping: true,
  shipped: true,
  failed: true,
  abandoned: true,
};

/** Every `error.code`, from the one mapping of codes to statuses (http-errors.ts). */
export const ERROR_CODES: readonly string[] = [
  ...Object.keys(HTTP_STATUS),
  ...Object.keys(HTTP_ONLY_ERRORS),
];

/** The codes an error answer with `status` may carry. */
export function errorCodesFor(status: number): string[] {
  const tasklog = (Object.keys(HTTP_STATUS) as ErrorCode[]).filter(
    (c) => HTTP_STATUS[c] === status,
  );
  const http = Object.entries(HTTP_ONLY_ERRORS)
    .filter(([, s]) => s === status)
    .map(([c]) => c);
  return [...tasklog, ...http];
}

/** `components.schemas`. */
export const schemas: Record<string, Json> = {
  Id: {
    type: 'string',
    minLength: 1,
    maxLength: MAX_ID_LENGTH,
    description:
      'A DAG, run or task id: no `/`, `\\` or control character, not `.` or `..`; URL-encoded in paths.',
  },
  ErrorCode: { enum: ERROR_CODES },
  Error: record(
    {
      error: record({
        code: ref('ErrorCode'),
        message: { type: 'string', description: 'Safe to show; URL passwords are masked.' },
      }),
    },
    'The body of every error answer.',
  ),
  AttemptState: { enum: Object.keys(STATES) },
  Attempt: record({
    dagId: ref('Id'),
    runId: ref('Id'),
    taskId: ref('Id'),
    mapIndex: { type: 'integer', minimum: -1, description: '-1 for a task that is not mapped.' },
    tryNumber: { type: 'integer', minimum: 1 },
    relativePath: { type: 'string', description: "The log's path in the archive's layout." },
    state: ref('AttemptState'),
    size: nullable('integer', { minimum: 0 }),
    sha256: nullable('string', { pattern: '^[0-9a-f]{64}$' }),
    storeUrl: nullable('string', { description: 'Shown to the admin grant only, else null.' }),
    agentUrl: nullable('string', {
      description: "The agent serving a running attempt's live log; admin grant only, else null.",
    }),
    createdAt: dateTime,
    updatedAt: dateTime,
    shippedAt: nullable('string', { format: 'date-time' }),
    heartbeatAt: nullable('string', {
      format: 'date-time',
      description: "When the attempt's writer last said it was alive.",
    }),
    airflowState: nullable('string', { description: "Airflow's state of the try, where known." }),
    exitCode: nullable('integer', { description: "The task's exit code, where known." }),
  }),
  AttemptList: record({
    attempts: { type: 'array', maxItems: ATTEMPTS_MAX_LIMIT, items: ref('Attempt') },
  }),
  DagGroup: record({
    dagId: ref('Id'),
    attempts: count,
    running: count,
    lastUpdatedAt: dateTime,
  }),
  RunGroup: record({
    runId: ref('Id'),
    attempts: count,
    running: count,
    lastUpdatedAt: dateTime,
  }),
  TaskGroup: record({
    taskId: ref('Id'),
    mapIndex: { type: 'integer', minimum: -1 },
    attempts: count,
    latestTry: { type: 'integer', minimum: 1, description: 'The highest try number recorded.' },
    state: { ...ref('AttemptState'), description: "The latest try's state." },
    size: nullable('integer', { minimum: 0, description: "The latest try's size, once known." }),
    lastUpdatedAt: dateTime,
  }),
  NextPage: nullable('integer', {
    minimum: 1,
    description: 'The `offset` of the next page; null on the last page.',
  }),
  DagPage: record({
    dags: { type: 'array', maxItems: BROWSE_MAX_LIMIT, items: ref('DagGroup') },
    next: ref('NextPage'),
  }),
  RunPage: record({
    runs: { type: 'array', maxItems: BROWSE_MAX_LIMIT, items: ref('RunGroup') },
    next: ref('NextPage'),
  }),
  TaskPage: record({
    tasks: { type: 'array', maxItems: BROWSE_MAX_LIMIT, items: ref('TaskGroup') },
    next: ref('NextPage'),
  }),
  SearchMatch: record({
    offset: { ...offset, description: "Byte offset of the match's first byte." },
    lineOffset: { ...offset, description: 'Byte offset of the start of its line.' },
    length: { ...count, description: "The match's length in bytes." },
    line: {
      type: 'string',
      maxLength: EXCERPT_CHARS,
      description: `The line, cut to ${EXCERPT_CHARS} characters around the match.`,
    },
  }),
  SearchResult: record({
    matches: { type: 'array', maxItems: SEARCH_MAX_LIMIT, items: ref('SearchMatch') },
    scannedFrom: offset,
    scannedTo: { ...offset, description: 'Where a search for the rest resumes (`offset`).' },
    size: { ...offset, description: 'The bytes of the log known when the search ended.' },
    done: { type: 'boolean', description: 'The scan reached the end of what the store holds.' },
    stopped: {
      enum: [null, 'limit', 'time'],
      description: 'Why the scan ended early: `limit` matches found, or the time limit.',
    },
  }),
  PartHealth: {
    type: 'object',
    required: ['ok'],
    additionalProperties: false,
    properties: { ok: { type: 'boolean' }, error: { type: 'string' } },
  },
  Health: {
    type: 'object',
    required: ['status'],
    additionalProperties: false,
    description:
      "Which part failed, its error and the store's URL are shown to the admin grant only (or to anyone without authentication).",
    properties: {
      status: { enum: ['ok', 'unavailable'] },
      catalog: ref('PartHealth'),
      store: {
        type: 'object',
        required: ['ok', 'url'],
        additionalProperties: false,
        properties: { ok: { type: 'boolean' }, error: { type: 'string' }, url: { type: 'string' } },
      },
    },
  },
  LogText: record(
    {
      offset: { ...offset, description: "Byte offset of the text's first byte in the log." },
      text: {
        type: 'string',
        description: 'One log line with its `\\n`, or a piece of a line longer than 64 KiB.',
      },
    },
    'Valid UTF-8.',
  ),
  LogBytes: record(
    {
      offset,
      bytes: { type: 'string', contentEncoding: 'base64', description: 'The bytes, base64.' },
    },
    'Bytes that are not valid UTF-8, so that nothing is lost.',
  ),
  LogLine: { oneOf: [ref('LogText'), ref('LogBytes')] },
  LogEnd: record(
    {
      offset: { ...offset, description: 'The end of what was sent.' },
      eof: { const: true },
      complete: {
        type: 'boolean',
        description: 'False when the log ended without the archive confirming it whole.',
      },
    },
    'Always the last record.',
  ),
  LiveEvent: record(
    {
      event: {
        enum: ['source-lost', 'abandoned', 'lagging'],
        description:
          "`source-lost`: the agent was lost (offset: bytes received); `abandoned`: the writer's heartbeat stopped (the end follows); `lagging`: the follower fell too far behind, reconnect at `offset` (the body ends).",
      },
      offset,
    },
    'With `follow=true` only.',
  ),
  LogRecord: {
    description: 'One line of the NDJSON representation of a log.',
    oneOf: [ref('LogText'), ref('LogBytes'), ref('LogEnd'), ref('LiveEvent')],
  },
};
