import { errorCodesFor, type Json, ref } from './schemas.js';

export const param = (name: string): Json => ({ $ref: `#/components/parameters/${name}` });
export const header = (name: string): Json => ({ $ref: `#/components/headers/${name}` });
export const response = (name: string): Json => ({ $ref: `#/components/responses/${name}` });

const integer = (minimum: number, more: Json = {}): Json => ({ type: 'integer', minimum, ...more });
const flag = (description: string): Json => ({
  schema: { type: 'boolean', default: false },
  description: `${description} \`true\` or \`1\`; \`false\` or \`0\`.`,
});

/** `components.parameters`: the attempt's path, and what the log routes share. */
export const parameters: Record<string, Json> = {
  dagId: { name: 'dagId', in: 'path', required: true, schema: ref('Id') },
  runId: { name: 'runId', in: 'path', required: true, schema: ref('Id') },
  taskId: { name: 'taskId', in: 'path', required: true, schema: ref('Id') },
  tryNumber: {
    name: 'tryNumber',
    in: 'path',
    required: true,
    schema: integer(1),
    description: "Airflow's try number, from 1.",
  },
  mapIndex: {
    name: 'mapIndex',
    in: 'query',
    schema: integer(-1, { default: -1 }),
    description: 'The map index of a mapped task; -1 (the default) for a task that is not mapped.',
  },
  offset: {
    name: 'offset',
    in: 'query',
    schema: integer(0, { default: 0 }),
    description: 'The byte of the log to start at.',
  },
  format: {
    name: 'format',
    in: 'query',
    schema: { enum: ['text', 'ndjson'] },
    description:
      'The representation, overriding `Accept` (`application/x-ndjson`, and `text/event-stream` with `follow=true`).',
  },
  follow: {
    name: 'follow',
    in: 'query',
    ...flag(
      "Keep the answer open until the attempt ends: live from the worker's agent while it runs, then from the archive. Also with `Accept: text/event-stream` (Server-Sent Events).",
    ),
  },
  download: {
    name: 'download',
    in: 'query',
    ...flag('Add `Content-Disposition: attachment` (plain text only).'),
  },
  Range: {
    name: 'Range',
    in: 'header',
    schema: { type: 'string', examples: ['bytes=0-1023', 'bytes=1024-', 'bytes=-4096'] },
    description:
      'One byte range (RFC 9110 §14.2); several ranges or another unit are ignored (the whole log is sent). Not with `offset`, nor with NDJSON.',
  },
  'If-None-Match': {
    name: 'If-None-Match',
    in: 'header',
    schema: { type: 'string' },
    description: "A complete log's ETag: 304 when it is still current.",
  },
  'If-Range': {
    name: 'If-Range',
    in: 'header',
    schema: { type: 'string' },
    description: "Apply `Range` only while the log's ETag is this one (a date never matches).",
  },
  'Last-Event-ID': {
    name: 'Last-Event-ID',
    in: 'header',
    schema: { type: 'string', pattern: '^[0-9]{0,15}$' },
    description:
      'With Server-Sent Events: the `id` of the last event received, a byte offset to resume from (instead of `offset`).',
  },
};

/** `components.headers`: what the log routes tell about the log besides its bytes. */
export const headers: Record<string, Json> = {
  'X-Tasklog-Size': {
    schema: integer(0),
    description: 'The bytes of the log stored now (absent with `follow=true`).',
  },
  'X-Tasklog-Complete': {
    schema: { type: 'boolean' },
    description: 'Whether the log is finished (absent with `follow=true`).',
  },
  'X-Tasklog-Offset': {
    schema: integer(0),
    required: true,
    description: "The log offset of the body's first byte.",
  },
  'X-Tasklog-Live': {
    schema: { type: 'boolean' },
    description: "With `follow=true`: whether the worker's agent will be asked for the live log.",
  },
  ETag: {
    schema: { type: 'string', pattern: '^"sha256:[0-9a-f]{64}"$' },
    description: "A complete plain-text log's content hash; the same on every replica.",
  },
  'Cache-Control': { schema: { type: 'string' }, required: true },
  'Content-Range': {
    schema: { type: 'string', pattern: '^bytes [0-9]+-[0-9]+/([0-9]+|\\*)$' },
    required: true,
    description: "The range sent; `*` for a running attempt's length, not known yet.",
  },
  'Content-Range-Unsatisfied': {
    schema: { type: 'string', pattern: '^bytes \\*/[0-9]+$' },
    description: 'The bytes stored (`bytes */<size>`), when the log exists.',
  },
  'Content-Disposition': {
    schema: { type: 'string', pattern: '^attachment; filename="' },
    description:
      'With `download=1`: `<dag>__<run>__<task>[__<mapIndex>]__<try>.log`, exact in `filename*` (RFC 6266) when it is not plain ASCII.',
  },
  'Accept-Ranges': { schema: { const: 'bytes' } },
  'WWW-Authenticate': { schema: { const: 'Bearer' }, required: true },
};

/** An error answer with `status`: the Error body, its `code` limited to the ones `status` has. */
function errorResponse(status: number, description: string, extraHeaders?: Json): Json {
  return {
    description,
    ...(extraHeaders ? { headers: extraHeaders } : {}),
    content: {
      'application/json': {
        schema: {
          ...ref('Error'),
          properties: { error: { properties: { code: { enum: errorCodesFor(status) } } } },
        },
      },
    },
  };
}

/** The name in `components.responses` of the error answer with each status. */
const ERROR_RESPONSES = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  416: 'RangeNotSatisfiable',
  421: 'Misdirected',
  500: 'InternalError',
  503: 'Unavailable',
} as const;

export type ErrorStatus = keyof typeof ERROR_RESPONSES;

/** An operation's `responses` entries for these error statuses. */
export function errorResponses(...statuses: ErrorStatus[]): Record<string, Json> {
  return Object.fromEntries(statuses.map((s) => [String(s), response(ERROR_RESPONSES[s])]));
}

/** `components.responses`: the error answers the routes share. */
export const responses: Record<(typeof ERROR_RESPONSES)[ErrorStatus], Json> = {
  BadRequest: errorResponse(400, 'A parameter or an id is invalid.'),
  Unauthorized: errorResponse(401, 'No token, or one that is invalid, expired or revoked.', {
    'WWW-Authenticate': header('WWW-Authenticate'),
  }),
  Forbidden: errorResponse(403, 'The token does not grant this DAG (or the admin grant).'),
  NotFound: errorResponse(404, 'No such attempt, or the archive holds no log for it yet.'),
  RangeNotSatisfiable: errorResponse(
    416,
    'The `offset` (or `Range`, or `Last-Event-ID`) is past the end of the log.',
    { 'Content-Range': header('Content-Range-Unsatisfied') },
  ),
  Misdirected: errorResponse(
    421,
    'The `Host` is not one the server answers to (`server.allowed_hosts`).',
  ),
  InternalError: errorResponse(
    500,
    'A fault of the server, or a store that broke its promise (`INTEGRITY`).',
  ),
  Unavailable: errorResponse(
    503,
    'The catalog or the store does not answer, a store the catalog names cannot be opened, or the followers are at their limit.',
  ),
};
