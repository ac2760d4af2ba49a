import { type AttemptKey, attemptKey } from '../../attempt-key.js';
import { InvalidInputError } from '../../errors.js';
import type { AttemptFilter } from '../../path-template.js';
import { matchesFilter } from '../shared/chunk-layout.js';

const LOG_ID_FIELDS: Record<string, keyof AttemptKey> = {
  dag_id: 'dagId',
  task_id: 'taskId',
  run_id: 'runId',
  map_index: 'mapIndex',
  try_number: 'tryNumber',
};

type Part = { text: string } | { field: keyof AttemptKey };

/**
 * Airflow's `[elasticsearch] log_id_template`, rendered as Airflow renders it (Python's
 * str.format with the attempt's fields; `{{`/`}}` for literal braces), and parsed back from
 * the log ids of documents Airflow's shippers wrote, which carry no `run_id`/`map_index` field.
 * Airflow's date placeholders (`{logical_date}`, ...) are unknown to tasklog and refused.
 */
export class LogIdTemplate {
  readonly #parts: Part[];

  constructor(readonly source: string) {
    this.#parts = parseTemplate(source);
  }

  render(key: AttemptKey): string {
    return this.#parts.map((p) => ('text' in p ? p.text : String(key[p.field]))).join('');
  }

  /** The log ids of attempts matching `filter` all start with this. */
  prefix(filter: AttemptFilter): string {
    let out = '';
    for (const p of this.#parts) {
      if ('text' in p) out += p.text;
      else if (filter[p.field] === undefined) return out;
      else out += String(filter[p.field]);
    }
    return out;
  }

  /**
   * The attempt a log id names, given what `filter` pins; undefined when the id does not match
   * the template and filter, or when it splits more than one way (`a-b-c` with a `-` template:
   * which dashes separate fields?).
   */
  parse(logId: string, filter: AttemptFilter): AttemptKey | undefined {
    const parseWith = (unknown: string): AttemptKey | undefined => {
      const names: (keyof AttemptKey)[] = [];
      const pattern = this.#parts
        .map((p) => {
          if ('text' in p) return escapeRegExp(p.text);
          const known = filter[p.field];
          if (known !== undefined) return escapeRegExp(String(known));
          names.push(p.field);
          if (p.field === 'mapIndex') return '(-1|0|[1-9]\\d*)';
          if (p.field === 'tryNumber') return '([1-9]\\d*)';
          return unknown;
        })
        .join('');
      const m = new RegExp(`^${pattern}$`, 'u').exec(logId);
      if (!m) return undefined;
      const values: Record<string, unknown> = { ...filter };
      names.forEach((name, i) => {
        const v = m[i + 1]!;
        values[name] = name === 'mapIndex' || name === 'tryNumber' ? Number(v) : v;
      });
      try {
        return attemptKey(values as unknown as AttemptKey);
      } catch {
        return undefined;
      }
    };
    const lazy = parseWith('([\\s\\S]+?)');
    const greedy = parseWith('([\\s\\S]+)');
    if (!lazy || !greedy) return undefined;
    const same = (Object.values(LOG_ID_FIELDS) as (keyof AttemptKey)[]).every(
      (f) => lazy[f] === greedy[f],
    );
    if (!same || this.render(lazy) !== logId || !matchesFilter(lazy, filter)) return undefined;
    return lazy;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function parseTemplate(template: string): Part[] {
  const parts: Part[] = [];
  let text = '';
  for (let i = 0; i < template.length; i++) {
    const ch = template[i]!;
    if ((ch === '{' || ch === '}') && template[i + 1] === ch) {
      text += ch;
      i++;
    } else if (ch === '{') {
      const close = template.indexOf('}', i);
      if (close < 0)
        throw new InvalidInputError(`log_id_template has an unclosed "{": ${template}`);
      const name = template.slice(i + 1, close);
      const field = Object.hasOwn(LOG_ID_FIELDS, name) ? LOG_ID_FIELDS[name] : undefined;
      if (!field) {
        throw new InvalidInputError(
          `log_id_template placeholder {${name}} is not supported; use ${Object.keys(LOG_ID_FIELDS)
            .map((n) => `{${n}}`)
            .join(', ')}`,
        );
      }
      if (text) parts.push({ text });
      text = '';
      parts.push({ field });
      i = close;
    } else if (ch === '}') {
      throw new InvalidInputError(`log_id_template has a single "}": ${template}`);
    } else text += ch;
  }
  if (text) parts.push({ text });
  for (const [name, field] of Object.entries(LOG_ID_FIELDS)) {
    if (!parts.some((p) => 'field' in p && p.field === field)) {
      // Without every field two attempts would share one log_id.
      throw new InvalidInputError(`log_id_template must contain {${name}}: ${template}`);
    }
  }
  return parts;
}
