import { createHash } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ifNoneMatchMatches } from '../etag.js';
import { headers, parameters, responses } from './components.js';
import { OPENAPI_PATH, paths } from './paths.js';
import { logPaths } from './paths-log.js';
import { type Json, schemas } from './schemas.js';

export { OPENAPI_PATH };

const DESCRIPTION = `The HTTP API of the tasklog proxy: the archived and live logs of Airflow task attempts, the catalog that lists them, and the proxy's health and metrics.

Every answer carries \`X-Content-Type-Options: nosniff\`, a \`Content-Security-Policy\` and \`Cache-Control\`. Errors are \`{"error": {"code", "message"}}\` with the codes listed per status. Every \`GET\` also answers \`HEAD\` with the same status and headers and no body (RFC 9110 §9.3.2). Paths this document does not list answer 404 \`NOT_FOUND\` (401 first, when a token is needed and missing).

Extensions: \`x-tasklog-record\` is the schema of every line of an NDJSON body; \`x-tasklog-events\` maps each Server-Sent Event name to the schema of its JSON \`data\`; \`x-tasklog-segments: many\` marks a path parameter that spans several segments.`;

/**
 * The proxy's API as OpenAPI 3.1 (JSON Schema 2020-12): the one description, built from the
 * routes' own limits and the one mapping of error codes, served at `GET /api/v1/openapi.json`
 * and checked against every answer of the server tests.
 */
export const openApiDocument: Json = {
  openapi: '3.1.1',
  jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
  info: {
    title: 'tasklog proxy',
    version: '1.0.0',
    summary: 'Remote task logs for Apache Airflow',
    description: DESCRIPTION,
    license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
  },
  tags: [
    { name: 'logs', description: "An attempt's log: plain text, NDJSON, followed live, searched." },
    { name: 'catalog', description: 'The attempts the catalog knows, and the browser over them.' },
    { name: 'health', description: 'Probes; no token needed.' },
    { name: 'operations', description: 'Metrics and this document.' },
    { name: 'viewer', description: "The log viewer's page and files (`server.ui`)." },
  ],
  security: [{ bearer: [] }],
  paths: { ...paths, ...logPaths },
  components: {
    securitySchemes: {
      bearer: {
        type: 'http',
        scheme: 'bearer',
        description:
          'A token from `tasklog token create`, or a JWT (`auth.mode = "jwt"`). With `auth.mode = "none"` (loopback only) none is needed.',
      },
    },
    schemas,
    parameters,
    headers,
    responses,
  },
};

/**
 * `GET /api/v1/openapi.json`, open to all like `/health`: the document holds no data. It changes
 * only with the server's version, so clients re-validate (`no-cache`) against its content hash.
 */
export function openApiRoute(): RequestHandler {
  const body = JSON.stringify(openApiDocument);
  const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
  return (req, res) => {
    res.set({ 'Cache-Control': 'no-cache', ETag: etag });
    if (ifNoneMatchMatches(req.get('if-none-match'), etag)) {
      res.status(304).end();
      return;
    }
    res.type('application/json').send(body);
  };
}
