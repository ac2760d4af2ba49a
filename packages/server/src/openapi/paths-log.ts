import { EVENT_STREAM_TYPE } from '../live/follow-route.js';
import { NDJSON_TYPE } from '../routes/log-route.js';
import {
  DEFAULT_LIMIT as SEARCH_DEFAULT_LIMIT,
  MAX_LIMIT as SEARCH_MAX_LIMIT,
  MAX_QUERY_CHARS as SEARCH_MAX_QUERY_CHARS,
} from '../routes/search-route.js';
import { errorResponses, header, param } from './components.js';
import { type Json, ref } from './schemas.js';

/** The attempt a log path names: its path parameters and its `mapIndex`. */
const attemptParams = ['dagId', 'runId', 'taskId', 'tryNumber', 'mapIndex'].map(param);

/** What an attempt's routes can fail with. */
const attemptErrors = () => errorResponses(400, 401, 403, 404, 416, 421, 500, 503);

/** The headers of a log answer (200 and 206). */
const logHeaders: Json = {
  'X-Tasklog-Size': header('X-Tasklog-Size'),
  'X-Tasklog-Complete': header('X-Tasklog-Complete'),
  'X-Tasklog-Offset': header('X-Tasklog-Offset'),
  'X-Tasklog-Live': header('X-Tasklog-Live'),
  ETag: header('ETag'),
  'Cache-Control': header('Cache-Control'),
  'Accept-Ranges': header('Accept-Ranges'),
  'Content-Disposition': header('Content-Disposition'),
};

const text = { schema: { type: 'string' } };

/** The log's three representations; NDJSON and SSE describe their records in extensions. */
const logContent: Json = {
  'text/plain': text,
  [NDJSON_TYPE]: {
    schema: { type: 'string' },
    'x-tasklog-record': ref('LogRecord'),
  },
  [EVENT_STREAM_TYPE]: {
    schema: { type: 'string' },
    'x-tasklog-events': {
      log: ref('LogLine'),
      eof: ref('LogEnd'),
      'source-lost': ref('LiveEvent'),
      abandoned: ref('LiveEvent'),
      lagging: ref('LiveEvent'),
    },
  },
};

const LOG_DESCRIPTION = `One attempt's log from byte \`offset\`.

- \`text/plain; charset=utf-8\` by default, with \`Range\` (206), \`ETag\` and \`If-None-Match\` (304) for a complete log.
- \`${NDJSON_TYPE}\` with \`Accept: ${NDJSON_TYPE}\` or \`format=ndjson\`: one \`LogRecord\` a line (\`x-tasklog-record\`), the \`LogEnd\` record last.
- \`follow=true\` keeps the answer open until the attempt ends; with \`Accept: ${EVENT_STREAM_TYPE}\` (and no \`format\`) as Server-Sent Events: \`retry: 3000\` first, then events named by \`x-tasklog-events\` whose \`data\` is the JSON of that schema and whose \`id\` is the byte offset reached (send it back as \`Last-Event-ID\`), and \`: heartbeat\` comments.`;

/** 200/206/304 of the log; `withBody` false for HEAD, whose answers carry headers only. */
function logResponses(withBody: boolean): Json {
  const content = (c: Json) => (withBody ? { content: c } : {});
  return {
    '200': {
      description: 'The log (or, with `follow=true`, the log as it grows).',
      headers: logHeaders,
      ...content(logContent),
    },
    '206': {
      description: 'The bytes of `Range` (plain text only).',
      headers: { ...logHeaders, 'Content-Range': header('Content-Range') },
      ...content({ 'text/plain': text }),
    },
    '304': {
      description: "The client's copy (`If-None-Match`) is current.",
      headers: {
        ETag: { schema: { type: 'string' }, required: true },
        'X-Tasklog-Size': header('X-Tasklog-Size'),
        'X-Tasklog-Complete': header('X-Tasklog-Complete'),
        'Cache-Control': header('Cache-Control'),
      },
    },
    ...attemptErrors(),
  };
}

const logParameters = [
  ...attemptParams,
  ...['offset', 'format', 'follow', 'download', 'Range', 'If-None-Match', 'If-Range'].map(param),
  param('Last-Event-ID'),
];

/** `…/attempts/{tryNumber}/log` and `…/log/search`. */
export const logPaths: Record<string, Json> = {
  '/api/v1/dags/{dagId}/runs/{runId}/tasks/{taskId}/attempts/{tryNumber}/log': {
    get: {
      operationId: 'getLog',
      tags: ['logs'],
      summary: "An attempt's log",
      description: LOG_DESCRIPTION,
      parameters: logParameters,
      responses: logResponses(true),
    },
    head: {
      operationId: 'headLog',
      tags: ['logs'],
      summary: "An attempt's log headers: its size, whether it is complete, its ETag",
      parameters: logParameters,
      responses: logResponses(false),
    },
  },
  '/api/v1/dags/{dagId}/runs/{runId}/tasks/{taskId}/attempts/{tryNumber}/log/search': {
    get: {
      operationId: 'searchLog',
      tags: ['logs'],
      summary: "Finds text or a regular expression in an attempt's whole log",
      description:
        'Streams the log from `offset` with bounded memory until `limit` matches or `server.search_time_limit`; the next page starts at `offset=scannedTo`.',
      parameters: [
        ...attemptParams,
        {
          name: 'q',
          in: 'query',
          required: true,
          schema: { type: 'string', minLength: 1, maxLength: SEARCH_MAX_QUERY_CHARS },
        },
        {
          name: 'regex',
          in: 'query',
          schema: { type: 'boolean', default: false },
          description: '`q` is a JavaScript regular expression (an invalid one is 400).',
        },
        {
          name: 'case',
          in: 'query',
          schema: { type: 'boolean', default: false },
          description: 'Match case (ignored by default).',
        },
        param('offset'),
        {
          name: 'limit',
          in: 'query',
          schema: {
            type: 'integer',
            minimum: 1,
            maximum: SEARCH_MAX_LIMIT,
            default: SEARCH_DEFAULT_LIMIT,
          },
        },
      ],
      responses: {
        '200': {
          description: 'The matches, and where the scan stopped.',
          headers: { 'Cache-Control': header('Cache-Control') },
          content: { 'application/json': { schema: ref('SearchResult') } },
        },
        ...attemptErrors(),
      },
    },
  },
};
