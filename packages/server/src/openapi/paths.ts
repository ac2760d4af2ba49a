import {
  DEFAULT_LIMIT as ATTEMPTS_DEFAULT_LIMIT,
  MAX_LIMIT as ATTEMPTS_MAX_LIMIT,
} from '../routes/attempts-route.js';
import {
  DEFAULT_LIMIT as BROWSE_DEFAULT_LIMIT,
  MAX_LIMIT as BROWSE_MAX_LIMIT,
  MAX_QUERY_CHARS as BROWSE_MAX_QUERY_CHARS,
} from '../routes/browse-route.js';
import { errorResponses, header, param, response } from './components.js';
import { type Json, ref } from './schemas.js';

/** Where the document is served. */
export const OPENAPI_PATH = '/api/v1/openapi.json';

const cacheControl = { 'Cache-Control': header('Cache-Control') };
const json = (schema: Json) => ({ 'application/json': { schema } });
const ok = (description: string, schema: Json): Json => ({
  description,
  headers: cacheControl,
  content: json(schema),
});

/** For the open routes: no token needed, whatever `auth.mode` is. */
const open = { security: [] };

/** `q`, `limit` and `offset` of the attempt browser's levels. */
const pageParams: Json[] = [
  {
    name: 'q',
    in: 'query',
    schema: { type: 'string', maxLength: BROWSE_MAX_QUERY_CHARS },
    description: "Only groups whose id holds this text, ignoring case; '' for all.",
  },
  {
    name: 'limit',
    in: 'query',
    schema: {
      type: 'integer',
      minimum: 1,
      maximum: BROWSE_MAX_LIMIT,
      default: BROWSE_DEFAULT_LIMIT,
    },
  },
  {
    name: 'offset',
    in: 'query',
    schema: { type: 'integer', minimum: 0, default: 0 },
    description: 'Groups skipped first: the `next` of the previous page.',
  },
];

const healthResponses: Json = {
  '200': ok('The catalog and the store answer.', {
    ...ref('Health'),
    properties: { status: { const: 'ok' } },
  }),
  '503': ok('The catalog or the store does not answer within the timeout.', {
    ...ref('Health'),
    properties: { status: { const: 'unavailable' } },
  }),
};

const html = { 'text/html': { schema: { type: 'string' } } };

/** The viewer's page: `index.html` for `/` and every page route under `/dags`. */
const viewerPage = (operationId: string, parameters: Json[] = []): Json => ({
  get: {
    operationId,
    tags: ['viewer'],
    summary: "The log viewer's page (it asks for a token and sends it on every API call)",
    ...open,
    parameters,
    responses: {
      '200': {
        description: '`index.html`, re-validated on every visit.',
        headers: cacheControl,
        content: html,
      },
      '304': { description: 'The copy the browser holds is current.' },
      ...errorResponses(421, 500),
      '404': {
        ...response('NotFound'),
        description: 'The viewer is turned off (`server.ui = false`).',
      },
      '503': {
        description: 'The viewer is not built (`UI_NOT_BUILT`); the API works without it.',
        content: json(ref('Error')),
      },
    },
  },
});

/** Every route of the proxy but an attempt's log and its search (paths-log.ts). */
export const paths: Record<string, Json> = {
  '/health': {
    get: {
      operationId: 'getHealth',
      tags: ['health'],
      summary: 'Readiness, as `/health/ready`',
      ...open,
      responses: healthResponses,
    },
  },
  '/health/ready': {
    get: {
      operationId: 'getReadiness',
      tags: ['health'],
      summary: 'Whether the catalog and the store answer (a readiness probe)',
      ...open,
      responses: healthResponses,
    },
  },
  '/health/live': {
    get: {
      operationId: 'getLiveness',
      tags: ['health'],
      summary: 'The process answers (a liveness probe); asks nothing of the catalog or the store',
      ...open,
      responses: {
        '200': ok('Alive.', {
          type: 'object',
          required: ['status'],
          additionalProperties: false,
          properties: { status: { const: 'ok' } },
        }),
      },
    },
  },
  '/metrics': {
    get: {
      operationId: 'getMetrics',
      tags: ['operations'],
      summary: "The proxy's metrics, in Prometheus' text format (the admin grant)",
      responses: {
        '200': {
          description: 'Prometheus text exposition format 0.0.4.',
          headers: cacheControl,
          content: { 'text/plain': { schema: { type: 'string' } } },
        },
        ...errorResponses(401, 403, 421, 500),
      },
    },
  },
  [OPENAPI_PATH]: {
    get: {
      operationId: 'getOpenApi',
      tags: ['operations'],
      summary: 'This document',
      ...open,
      parameters: [param('If-None-Match')],
      responses: {
        '200': {
          description: 'OpenAPI 3.1, re-validated with its `ETag`.',
          headers: { ...cacheControl, ETag: { schema: { type: 'string' }, required: true } },
          content: json({
            type: 'object',
            required: ['openapi', 'info', 'paths'],
            properties: {
              openapi: { type: 'string', pattern: '^3\\.1\\.' },
              info: { type: 'object' },
              paths: { type: 'object' },
            },
          }),
        },
        '304': { description: 'The copy the client holds is current.' },
        ...errorResponses(421, 500),
      },
    },
  },
  '/api/v1/attempts': {
    get: {
      operationId: 'listAttempts',
      tags: ['catalog'],
      summary: 'Catalog entries, newest first; only the DAGs the token may read',
      parameters: [
        ...['dagId', 'runId', 'taskId'].map((name) => ({ name, in: 'query', schema: ref('Id') })),
        param('mapIndex'),
        { name: 'tryNumber', in: 'query', schema: { type: 'integer', minimum: 1 } },
        {
          name: 'limit',
          in: 'query',
          schema: {
            type: 'integer',
            minimum: 1,
            maximum: ATTEMPTS_MAX_LIMIT,
            default: ATTEMPTS_DEFAULT_LIMIT,
          },
        },
      ],
      responses: {
        '200': ok('The attempts.', ref('AttemptList')),
        ...errorResponses(400, 401, 403, 421, 500, 503),
      },
    },
  },
  '/api/v1/dags': {
    get: {
      operationId: 'listDags',
      tags: ['catalog'],
      summary: 'The DAGs the token may read, newest first, paged',
      parameters: pageParams,
      responses: {
        '200': ok('A page of DAGs.', ref('DagPage')),
        ...errorResponses(400, 401, 421, 500, 503),
      },
    },
  },
  '/api/v1/dags/{dagId}/runs': {
    get: {
      operationId: 'listRuns',
      tags: ['catalog'],
      summary: "A DAG's runs, newest first, paged",
      parameters: [param('dagId'), ...pageParams],
      responses: {
        '200': ok('A page of runs.', ref('RunPage')),
        ...errorResponses(400, 401, 403, 421, 500, 503),
      },
    },
  },
  '/api/v1/dags/{dagId}/runs/{runId}/tasks': {
    get: {
      operationId: 'listTasks',
      tags: ['catalog'],
      summary: "A run's task instances with their latest try, newest first, paged",
      parameters: [param('dagId'), param('runId'), ...pageParams],
      responses: {
        '200': ok('A page of task instances.', ref('TaskPage')),
        ...errorResponses(400, 401, 403, 421, 500, 503),
      },
    },
  },
  '/': viewerPage('getViewer'),
  '/dags': viewerPage('getViewerDags'),
  '/dags/{page}': viewerPage('getViewerPage', [
    {
      name: 'page',
      in: 'path',
      required: true,
      schema: { type: 'string' },
      description: "The viewer's route: several path segments (`etl/runs/…`).",
      'x-tasklog-segments': 'many',
    },
  ]),
  '/assets/{file}': {
    get: {
      operationId: 'getViewerAsset',
      tags: ['viewer'],
      summary: "The viewer's files; their names carry their content hash",
      ...open,
      parameters: [{ name: 'file', in: 'path', required: true, schema: { type: 'string' } }],
      responses: {
        '200': {
          description: 'The file, cached as immutable for a year.',
          headers: cacheControl,
          content: { 'text/javascript': {}, 'text/css': {}, 'image/*': {}, 'font/*': {} },
        },
        '304': { description: 'The copy the browser holds is current.' },
        ...errorResponses(404, 421, 500),
        '401': {
          ...response('Unauthorized'),
          description:
            'A file that does not exist falls through to the API, which asks for a token first.',
        },
      },
    },
  },
};
