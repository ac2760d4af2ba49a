import type { OutgoingHttpHeaders } from 'node:http';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';

type Json = Record<string, unknown>;

/** One answer of the proxy as the server wrote it: what the checker needs to judge it. */
export interface Exchange {
  method: string;
  /** The request's path as sent (percent-encoded), without the query. */
  path: string;
  status: number;
  headers: OutgoingHttpHeaders;
  /** The body's first bytes (all of it unless `truncated`). */
  body: Buffer;
  /** When `truncated`: the body's last bytes. */
  tail: Buffer;
  truncated: boolean;
  /** Whether the response ended (false: cut off, e.g. a follower who left). */
  finished: boolean;
}

/** What the checker made of an answer. */
export interface Verdict {
  /** The path template and method the answer was judged by; `unlisted` when none. */
  operation: string;
  problems: string[];
  /** Records (NDJSON lines, SSE events) checked against their schema. */
  records: number;
}

const DOC_ID = 'urn:tasklog:openapi';
/** The statuses a path or method the document does not list may answer, as the app does. */
const UNLISTED_STATUSES = ['401', '404', '421'];
const pointer = (parts: string[]) =>
  `#/${parts.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;

interface PathRoute {
  template: string;
  pattern: RegExp;
  item: Json;
}

/**
 * Judges answers by an OpenAPI 3.1 document: the status must be declared for the path and method,
 * declared headers present when required and valid, the content type declared, and the body
 * valid: JSON against its schema, NDJSON lines and Server-Sent Events against the record schemas
 * the document names in its `x-tasklog-record` and `x-tasklog-events` extensions.
 */
export class ResponseChecker {
  readonly #doc: Json;
  readonly #ajv: Ajv2020;
  /** Header values are strings: coerced to the schema's type, as a client reads them. */
  readonly #headerAjv: Ajv2020;
  readonly #paths: PathRoute[];
  readonly #compiled = new Map<string, ValidateFunction>();

  constructor(doc: Json) {
    this.#doc = doc;
    const options = { strict: true, strictTypes: false, allErrors: true } as const;
    this.#ajv = new Ajv2020(options);
    this.#headerAjv = new Ajv2020({ ...options, coerceTypes: true });
    for (const ajv of [this.#ajv, this.#headerAjv]) {
      formats.default(ajv);
      // The document's own fields are not schema keywords; refs point into it by JSON pointer.
      ajv.addVocabulary(['openapi', 'jsonSchemaDialect', 'info', 'tags', 'security', 'paths']);
      ajv.addKeyword('components');
      ajv.addSchema(doc, DOC_ID);
    }
    const paths = doc.paths as Record<string, Json>;
    this.#paths = Object.entries(paths)
      .map(([template, item]) => ({ template, item, pattern: this.#pathPattern(template, item) }))
      // A concrete path wins over a templated one that also matches (OpenAPI 3.1 §4.8.8).
      .sort((a, b) => braces(a.template) - braces(b.template));
    this.#compileAll();
  }

  /** Judges one answer. */
  check(ex: Exchange): Verdict {
    const found = this.#paths.find((p) => p.pattern.test(ex.path));
    const method = ex.method.toLowerCase();
    // HEAD is answered wherever GET is, with GET's status and headers (RFC 9110 §9.3.2).
    const opName =
      found && !found.item[method] && method === 'head' && found.item.get ? 'get' : method;
    const op = found?.item[opName] as Json | undefined;
    if (!found || !op) return this.#checkUnlisted(ex);
    const operation = `${ex.method} ${found.template}`;
    const responses = op.responses as Record<string, Json>;
    const code = String(ex.status);
    const declared = responses[code] ?? responses[`${code[0]}XX`] ?? responses.default;
    if (!declared) {
      return { operation, problems: [`status ${code} is not declared`], records: 0 };
    }
    const at = ['paths', found.template, opName, 'responses', code];
    return { operation, ...this.#checkResponse(ex, declared, at) };
  }

  #checkUnlisted(ex: Exchange): Verdict {
    const operation = 'unlisted';
    const code = String(ex.status);
    if (!UNLISTED_STATUSES.includes(code)) {
      return {
        operation,
        problems: [`${ex.method} ${ex.path} is not in the document, and answered ${code}`],
        records: 0,
      };
    }
    const name = { '401': 'Unauthorized', '404': 'NotFound', '421': 'Misdirected' }[code]!;
    const shared = (this.#doc.components as Json).responses as Record<string, Json>;
    return {
      operation,
      ...this.#checkResponse(ex, shared[name]!, ['components', 'responses', name]),
    };
  }

  #checkResponse(
    ex: Exchange,
    declared: Json,
    at: string[],
  ): { problems: string[]; records: number } {
    let response = declared;
    if (typeof declared.$ref === 'string') {
      at = declared.$ref.slice(2).split('/').map(unescapePointer);
      response = this.#resolve(declared.$ref);
    }
    const problems = this.#checkHeaders(ex, (response.headers ?? {}) as Record<string, Json>);
    const content = response.content as Record<string, Json> | undefined;
    const type = headerText(ex.headers['content-type'])?.split(';')[0]?.trim().toLowerCase();
    const hasBody = ex.body.length > 0;
    if (!content) {
      if (hasBody && ex.method !== 'HEAD') problems.push('has a body, but none is declared');
      return { problems, records: 0 };
    }
    if (!type) {
      if (ex.method !== 'HEAD') problems.push('has no Content-Type');
      return { problems, records: 0 };
    }
    const mediaKey = Object.keys(content).find((k) => mediaMatches(k, type));
    if (!mediaKey) {
      problems.push(`Content-Type ${type} is not declared (${Object.keys(content).join(', ')})`);
      return { problems, records: 0 };
    }
    if (ex.method === 'HEAD') return { problems, records: 0 };
    const media = content[mediaKey]!;
    const mediaAt = [...at, 'content', mediaKey];
    let records = 0;
    if (media['x-tasklog-record']) {
      const validate = this.#validator([...mediaAt, 'x-tasklog-record']);
      for (const line of streamRecords(ex, /\n/)) {
        records++;
        const problem = this.#validateJson(validate, line);
        if (problem) problems.push(`NDJSON line ${JSON.stringify(line)}: ${problem}`);
      }
    } else if (media['x-tasklog-events']) {
      const events = media['x-tasklog-events'] as Json;
      for (const event of sseEvents(streamRecords(ex, /\n\n/))) {
        if (event.data === undefined) continue;
        records++;
        const name = event.event ?? 'message';
        if (!events[name]) problems.push(`SSE event "${name}" is not declared`);
        else {
          const validate = this.#validator([...mediaAt, 'x-tasklog-events', name]);
          const problem = this.#validateJson(validate, event.data);
          if (problem) problems.push(`SSE ${name} ${JSON.stringify(event.data)}: ${problem}`);
        }
        if (event.id !== undefined && !/^[0-9]+$/.test(event.id)) {
          problems.push(`SSE id "${event.id}" is not a byte offset`);
        }
      }
    } else if (/[/+]json$/.test(type)) {
      if (ex.truncated) problems.push('JSON body too large to check');
      else if (ex.finished) {
        const problem = this.#validateJson(this.#validator([...mediaAt, 'schema']), ex.body);
        if (problem) problems.push(`body: ${problem}`);
      }
    }
    return { problems, records };
  }

  #checkHeaders(ex: Exchange, declared: Record<string, Json>): string[] {
    const problems: string[] = [];
    for (const [name, entry] of Object.entries(declared)) {
      // OpenAPI: a declared Content-Type header is ignored; the media types say it.
      if (name.toLowerCase() === 'content-type') continue;
      const header = typeof entry.$ref === 'string' ? this.#resolve(entry.$ref) : entry;
      const value = headerText(ex.headers[name.toLowerCase()]);
      if (value === undefined) {
        if (header.required) problems.push(`header ${name} is required, but missing`);
        continue;
      }
      const validate = this.#headerAjv.compile({
        type: 'object',
        properties: { value: header.schema as Json },
      });
      if (!validate({ value })) {
        problems.push(`header ${name}: ${JSON.stringify(value)} ${errorText(validate)}`);
      }
    }
    return problems;
  }

  #validateJson(validate: ValidateFunction, text: Buffer | string): string | undefined {
    let value: unknown;
    try {
      value = JSON.parse(String(text));
    } catch {
      return 'is not JSON';
    }
    return validate(value) ? undefined : errorText(validate);
  }

  /** The validator of the schema at `parts` in the document, compiled once. */
  #validator(parts: string[]): ValidateFunction {
    const ref = `${DOC_ID}${pointer(parts)}`;
    let validate = this.#compiled.get(ref);
    if (!validate) {
      validate = this.#ajv.compile({ $ref: ref });
      this.#compiled.set(ref, validate);
    }
    return validate;
  }

  /** Compiles every schema in the document now, so that a broken one fails at once. */
  #compileAll(): void {
    const components = this.#doc.components as Record<string, Json>;
    for (const name of Object.keys(components.schemas ?? {})) {
      this.#validator(['components', 'schemas', name]);
    }
    const walk = (node: unknown, at: string[]): void => {
      if (!node || typeof node !== 'object') return;
      for (const [k, v] of Object.entries(node)) {
        if (k === 'schema' || k === 'x-tasklog-record') this.#validator([...at, k]);
        else if (k === 'x-tasklog-events') {
          for (const event of Object.keys(v as Json)) this.#validator([...at, k, event]);
        } else walk(v, [...at, k]);
      }
    };
    walk(this.#doc.paths, ['paths']);
    for (const part of ['parameters', 'headers', 'responses']) {
      walk(components[part], ['components', part]);
    }
  }

  #resolve(ref: string): Json {
    let node: unknown = this.#doc;
    for (const part of ref.slice(2).split('/').map(unescapePointer)) {
      node = (node as Json)[part];
    }
    if (!node) throw new Error(`unresolved $ref ${ref}`);
    return node as Json;
  }

  #pathPattern(template: string, item: Json): RegExp {
    const params = Object.values(item)
      .flatMap((op) => ((op as Json).parameters ?? []) as Json[])
      .map((p) => (typeof p.$ref === 'string' ? this.#resolve(p.$ref) : p));
    const body = template
      .split(/(\{[^}]+\})/)
      .map((part) => {
        const name = /^\{(.+)\}$/.exec(part)?.[1];
        if (!name) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        const many = params.some((p) => p.name === name && p['x-tasklog-segments'] === 'many');
        return many ? '.+' : '[^/]+';
      })
      .join('');
    // Express matches paths ignoring case and a trailing slash.
    return new RegExp(`^${body}/?$`, 'i');
  }
}

const braces = (template: string) => (template.match(/\{/g) ?? []).length;
const unescapePointer = (p: string) => p.replace(/~1/g, '/').replace(/~0/g, '~');

function headerText(value: OutgoingHttpHeaders[string]): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

function mediaMatches(declared: string, type: string): boolean {
  const [major, minor] = declared.toLowerCase().split('/');
  const [tMajor] = type.split('/');
  if (major === '*') return true;
  return minor === '*' ? major === tMajor : declared.toLowerCase() === type;
}

function errorText(validate: ValidateFunction): string {
  return (validate.errors ?? [])
    .map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`.trim())
    .join('; ');
}

/**
 * The whole records of a streamed body, split by `separator`: all of them when it was kept whole,
 * else those of its first and its last bytes (the pieces cut at either edge are left out), and
 * without the unfinished last one of a body that was cut off.
 */
function streamRecords(ex: Exchange, separator: RegExp): string[] {
  const pieces = (buf: Buffer) => buf.toString('utf8').split(separator);
  const ended = (list: string[]) => (ex.finished ? list : list.slice(0, -1));
  const records = ex.truncated ? pieces(ex.body).slice(0, -1) : ended(pieces(ex.body));
  if (ex.truncated) records.push(...ended(pieces(ex.tail).slice(1)));
  return records.filter((r) => r !== '');
}

interface SseEvent {
  event?: string;
  data?: string;
  id?: string;
}

/** Server-Sent Events from their blocks (the lines of one event), comments and retry left out. */
function sseEvents(blocks: string[]): SseEvent[] {
  return blocks.map((block) => {
    const event: SseEvent = {};
    for (const line of block.split('\n')) {
      const m = /^([^:]+): ?(.*)$/.exec(line);
      if (!m) continue;
      const [, field, value] = m;
      if (field === 'event') event.event = value;
      else if (field === 'id') event.id = value;
      else if (field === 'data')
        event.data = event.data === undefined ? value : `${event.data}\n${value}`;
    }
    return event;
  });
}
