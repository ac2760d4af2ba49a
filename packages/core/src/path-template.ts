import { type AttemptKey, attemptKey, parseIntStrict } from './attempt-key.js';
import { InvalidInputError } from './errors.js';

/**
 * Airflow's default `log_filename_template`, written in tasklog's template syntax.
 * `[...]` is a part rendered only when the key's mapIndex is >= 0.
 */
export const AIRFLOW_PATH_TEMPLATE =
  'dag_id={dag_id}/run_id={run_id}/task_id={task_id}/[map_index={map_index}/]attempt={try_number}.log';

type Field = keyof AttemptKey;

// Both Airflow's snake_case names and tasklog's camelCase names are accepted.
const PLACEHOLDERS: Record<string, Field> = {
  dag_id: 'dagId',
  dagId: 'dagId',
  run_id: 'runId',
  runId: 'runId',
  task_id: 'taskId',
  taskId: 'taskId',
  map_index: 'mapIndex',
  mapIndex: 'mapIndex',
  try_number: 'tryNumber',
  tryNumber: 'tryNumber',
};

type Part = { kind: 'text'; text: string } | { kind: 'field'; field: Field };
interface Section {
  /** Rendered only when mapIndex >= 0. */
  mapped: boolean;
  parts: Part[];
}

/** Filter for listing: any subset of the key's fields. */
export type AttemptFilter = Partial<AttemptKey>;

/**
 * Renders an AttemptKey to a relative path and parses a relative path back. A template is
 * data: `{field}` placeholders and one optional `[...]` section that appears only for mapped
 * tasks; nothing in it is ever evaluated.
 *
 * Every render is checked by parsing it back, so a custom template that cannot represent a key
 * unambiguously fails loudly instead of writing a log where it will never be found again.
 */
export class PathTemplate {
  /** The template as given, e.g. AIRFLOW_PATH_TEMPLATE. */
  readonly source: string;
  private readonly sections: Section[];
  private readonly pattern: RegExp;
  private readonly groups: Field[] = [];

  constructor(source: string = AIRFLOW_PATH_TEMPLATE) {
    this.source = source;
    this.sections = parseTemplate(source);
    let re = '';
    for (const section of this.sections) {
      let body = '';
      for (const part of section.parts) {
        if (part.kind === 'text') body += escapeRegExp(part.text);
        else {
          this.groups.push(part.field);
          body += fieldPattern(part.field, section.mapped);
        }
      }
      re += section.mapped ? `(?:${body})?` : body;
    }
    this.pattern = new RegExp(`^${re}$`, 'u');
    const fields = new Set(this.groups);
    for (const f of ['dagId', 'runId', 'taskId', 'tryNumber'] as const) {
      if (!fields.has(f)) throw new InvalidInputError(`path template ${source} lacks {${f}}`);
    }
    if (!fields.has('mapIndex')) {
      throw new InvalidInputError(`path template ${source} lacks {map_index}`);
    }
  }

  /** The relative path (always `/`-separated) of `key`. */
  render(key: AttemptKey): string {
    const path = this.renderRaw(key);
    const back = this.tryParse(path);
    if (
      !back ||
      back.dagId !== key.dagId ||
      back.runId !== key.runId ||
      back.taskId !== key.taskId ||
      back.mapIndex !== key.mapIndex ||
      back.tryNumber !== key.tryNumber
    ) {
      throw new InvalidInputError(
        `path template ${this.source} cannot represent this attempt unambiguously (rendered ${path})`,
      );
    }
    return path;
  }

  /** Parses a relative path (`/`-separated) back to a key; throws InvalidInputError if it does not match. */
  parse(relativePath: string): AttemptKey {
    const key = this.tryParse(relativePath);
    if (!key) {
      throw new InvalidInputError(
        `path ${JSON.stringify(relativePath)} does not match the path template ${this.source}`,
      );
    }
    return key;
  }

  /** Like parse, but returns undefined for a path that is not an attempt's log. */
  tryParse(relativePath: string): AttemptKey | undefined {
    const m = this.pattern.exec(relativePath);
    if (!m) return undefined;
    const values: Partial<Record<Field, string>> = {};
    for (let i = 0; i < this.groups.length; i++) {
      const field = this.groups[i]!;
      const v = m[i + 1];
      if (v === undefined) continue;
      if (values[field] !== undefined && values[field] !== v) return undefined;
      values[field] = v;
    }
    try {
      return attemptKey({
        dagId: values.dagId,
        runId: values.runId,
        taskId: values.taskId,
        mapIndex: values.mapIndex === undefined ? -1 : parseIntStrict('mapIndex', values.mapIndex),
        tryNumber: parseIntStrict('tryNumber', values.tryNumber ?? ''),
      });
    } catch {
      return undefined;
    }
  }

  /**
   * The longest run of whole leading path segments fixed by `filter` (e.g. `dag_id=a/run_id=b/`),
   * so a store can list below it instead of scanning everything. Empty when nothing is fixed.
   */
  prefix(filter: AttemptFilter): string {
    let out = '';
    let segment = '';
    for (const section of this.sections) {
      if (section.mapped) {
        // An optional section is only known when the filter pins mapIndex.
        if (filter.mapIndex === undefined) return out;
        if (filter.mapIndex < 0) continue;
      }
      for (const part of section.parts) {
        if (part.kind === 'field') {
          const v = filter[part.field];
          if (v === undefined) return out;
          segment += String(v);
          continue;
        }
        const pieces = part.text.split('/');
        segment += pieces[0];
        for (const piece of pieces.slice(1)) {
          out += `${segment}/`;
          segment = piece;
        }
      }
    }
    return out;
  }

  private renderRaw(key: AttemptKey): string {
    let out = '';
    for (const section of this.sections) {
      if (section.mapped && key.mapIndex < 0) continue;
      for (const part of section.parts) {
        out += part.kind === 'text' ? part.text : String(key[part.field]);
      }
    }
    for (const segment of out.split('/')) {
      if (segment === '' || segment === '.' || segment === '..' || segment.includes('\\')) {
        throw new InvalidInputError(`path template ${this.source} rendered an unsafe path ${out}`);
      }
    }
    return out;
  }
}

function fieldPattern(field: Field, inMappedSection: boolean): string {
  switch (field) {
    case 'mapIndex':
      return inMappedSection ? '(0|[1-9][0-9]*)' : '(-1|0|[1-9][0-9]*)';
    case 'tryNumber':
      return '([1-9][0-9]*)';
    default:
      return '([^/]+)';
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function parseTemplate(source: string): Section[] {
  const fail = (why: string): never => {
    throw new InvalidInputError(`invalid path template ${JSON.stringify(source)}: ${why}`);
  };
  if (source.length === 0) fail('it is empty');
  if (source.startsWith('/')) fail('it must be relative');
  if (source.includes('\\')) fail('use "/" as the separator');
  if (/[\u0000-\u001f]/.test(source)) fail('it contains control characters');
  const sections: Section[] = [];
  let current: Section = { mapped: false, parts: [] };
  let openedMapped = false;
  let i = 0;
  while (i < source.length) {
    const ch = source[i]!;
    if (ch === '{') {
      const end = source.indexOf('}', i);
      if (end < 0) fail(`unclosed "{" at ${i}`);
      const name = source.slice(i + 1, end);
      const field = PLACEHOLDERS[name];
      if (!field)
        fail(`unknown placeholder {${name}}; use ${Object.keys(PLACEHOLDERS).join(', ')}`);
      current.parts.push({ kind: 'field', field: field! });
      i = end + 1;
    } else if (ch === '[') {
      if (current.mapped || openedMapped) fail('only one [...] section is allowed');
      if (current.parts.length) sections.push(current);
      current = { mapped: true, parts: [] };
      openedMapped = true;
      i++;
    } else if (ch === ']') {
      if (!current.mapped) fail(`unexpected "]" at ${i}`);
      if (!current.parts.some((p) => p.kind === 'field' && p.field === 'mapIndex')) {
        fail('the [...] section must contain {map_index}');
      }
      sections.push(current);
      current = { mapped: false, parts: [] };
      i++;
    } else if (ch === '}') {
      fail(`unexpected "}" at ${i}`);
    } else {
      let j = i;
      while (j < source.length && !'{}[]'.includes(source[j]!)) j++;
      const text = source.slice(i, j);
      current.parts.push({ kind: 'text', text });
      i = j;
    }
  }
  if (current.mapped) fail('unclosed "["');
  if (current.parts.length) sections.push(current);
  const literal = sections
    .flatMap((s) => s.parts)
    .map((p) => (p.kind === 'text' ? p.text : 'x'))
    .join('');
  for (const segment of literal.split('/')) {
    if (segment === '') fail('it has an empty path segment');
    if (segment === '.' || segment === '..') fail(`it has a "${segment}" segment`);
  }
  return sections;
}
