/**
 * Elasticsearch's error body: `{ "error": { "root_cause": [...], "type", "reason", ... },
 * "status": N }`. The official client turns it into a `ResponseError` whose `meta.body` is this
 * object, so clients branch on `error.type`, which therefore matches the real server's.
 */
export interface EsErrorCause {
  type: string;
  reason: string;
  [extra: string]: unknown;
}

export class EsApiError extends Error {
  readonly status: number;
  readonly type: string;
  readonly reason: string;
  readonly extra: Record<string, unknown>;
  /** The innermost cause, when the top-level type wraps another (search phase failures). */
  readonly rootCause: EsErrorCause | undefined;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    type: string,
    reason: string,
    options: {
      extra?: Record<string, unknown>;
      rootCause?: EsErrorCause;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(`${type}: ${reason}`);
    this.name = 'EsApiError';
    this.status = status;
    this.type = type;
    this.reason = reason;
    this.extra = options.extra ?? {};
    this.rootCause = options.rootCause;
    this.headers = options.headers ?? {};
  }

  /** The `error` object, as found at the top of an answer or inside a bulk item. */
  body(): EsErrorCause {
    return { type: this.type, reason: this.reason, ...this.extra };
  }

  toJSON(): unknown {
    const root = this.rootCause ?? this.body();
    return {
      error: {
        root_cause: [root],
        type: this.type,
        reason: this.reason,
        ...this.extra,
        ...(this.rootCause ? { caused_by: this.rootCause } : {}),
      },
      status: this.status,
    };
  }
}

export const esErrors = {
  indexNotFound: (index: string) =>
    new EsApiError(404, 'index_not_found_exception', `no such index [${index}]`, {
      extra: { 'resource.type': 'index_or_alias', 'resource.id': index, index },
    }),
  alreadyExists: (index: string, uuid: string) =>
    new EsApiError(
      400,
      'resource_already_exists_exception',
      `index [${index}/${uuid}] already exists`,
      {
        extra: { index },
      },
    ),
  invalidIndexName: (index: string, why: string) =>
    new EsApiError(400, 'invalid_index_name_exception', `Invalid index name [${index}], ${why}`, {
      extra: { index },
    }),
  illegalArgument: (reason: string) => new EsApiError(400, 'illegal_argument_exception', reason),
  parsing: (reason: string) => new EsApiError(400, 'parsing_exception', reason),
  xContentParse: (reason: string) => new EsApiError(400, 'x_content_parse_exception', reason),
  mapperParsing: (reason: string, causedBy?: EsErrorCause) =>
    new EsApiError(400, 'mapper_parsing_exception', reason, {
      ...(causedBy ? { extra: { caused_by: causedBy } } : {}),
    }),
  /** ES 8.8+ reports a value that does not fit its field this way (older: mapper_parsing_exception). */
  documentParsing: (reason: string, causedBy?: EsErrorCause) =>
    new EsApiError(400, 'document_parsing_exception', `[1:2] ${reason}`, {
      ...(causedBy ? { extra: { caused_by: causedBy } } : {}),
    }),
  versionConflict: (index: string, id: string, version: number) =>
    new EsApiError(
      409,
      'version_conflict_engine_exception',
      `[${id}]: version conflict, document already exists (current version [${version}])`,
      { extra: { index_uuid: 'emulator', shard: '0', index } },
    ),
  rejected: () =>
    new EsApiError(
      429,
      'es_rejected_execution_exception',
      'rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=107374182]',
    ),
  unavailable: () =>
    new EsApiError(
      503,
      'cluster_block_exception',
      'blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];',
    ),
  internal: (reason: string) => new EsApiError(500, 'exception', reason),
  timeout: () => new EsApiError(408, 'timeout_exception', 'request timed out'),
  /** A failure inside the search phase: ES wraps the shard's cause. */
  searchPhase: (cause: EsApiError) =>
    new EsApiError(cause.status, 'search_phase_execution_exception', 'all shards failed', {
      extra: { phase: 'query', grouped: true },
      rootCause: cause.body(),
    }),
  contentTooLong: (limit: number) =>
    new EsApiError(
      413,
      'content_too_long_exception',
      `request content is larger than http.max_content_length [${limit}b]`,
    ),
  mediaType: (reason: string) => new EsApiError(400, 'media_type_header_exception', reason),
  noHandler: (method: string, path: string) =>
    new EsApiError(
      400,
      'illegal_argument_exception',
      `no handler found for uri [${path}] and method [${method}]`,
    ),
  methodNotAllowed: (method: string, path: string, allowed: string[]) =>
    new EsApiError(
      405,
      'method_not_allowed',
      `Incorrect HTTP method for uri [${path}] and method [${method}], allowed: [${allowed.join(', ')}]`,
      { headers: { Allow: allowed.join(',') } },
    ),
};
