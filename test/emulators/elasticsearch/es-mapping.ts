/**
 * Mappings as Elasticsearch keeps them, reduced to what the emulator's queries need: explicit
 * mappings, dynamic mapping of new fields (strings → `text` with a `keyword` sub-field, integers
 * → `long`, other numbers → `float`, ISO dates → `date`), coercion of values into their field's
 * type, and the `document_parsing_exception` (ES 8.8+; `mapper_parsing_exception` before) a value
 * that does not fit answers.
 *
 * Integer fields keep their values exact over the whole range of their type, as Lucene does
 * (a `long` up to 2^63-1): beyond 2^53 as bigint, never rounded through a double (see es-json.ts).
 * Reference: https://www.elastic.co/docs/manage-data/data-store/mapping/dynamic-field-mapping
 */
import { EsApiError, esErrors } from './es-errors.js';
import { stringifyJson } from './es-json.js';

export type FieldType =
  | 'text'
  | 'keyword'
  | 'long'
  | 'integer'
  | 'short'
  | 'byte'
  | 'double'
  | 'float'
  | 'half_float'
  | 'scaled_float'
  | 'unsigned_long'
  | 'date'
  | 'boolean'
  | 'binary'
  | 'object';

export interface FieldMapping {
  type: FieldType;
  /** Multi-fields, e.g. `{ keyword: { type: 'keyword', ignore_above: 256 } }`. */
  fields?: Record<string, { type: FieldType; ignore_above?: number }>;
  ignore_above?: number;
  /** Any other mapping parameter, kept so GET _mapping returns it. */
  [param: string]: unknown;
}

const INTEGER_TYPES = new Set<FieldType>(['long', 'integer', 'short', 'byte', 'unsigned_long']);
const FLOAT_TYPES = new Set<FieldType>(['double', 'float', 'half_float', 'scaled_float']);
const KNOWN_TYPES = new Set<FieldType>([
  ...INTEGER_TYPES,
  ...FLOAT_TYPES,
  'text',
  'keyword',
  'date',
  'boolean',
  'binary',
  'object',
]);
// strict_date_optional_time, the default dynamic date format.
const ISO_DATE =
  /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/;
const NUMERIC_STRING = /^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

export function isNumericType(type: FieldType): boolean {
  return INTEGER_TYPES.has(type) || FLOAT_TYPES.has(type);
}

/** The searchable form of one document: normalized values per indexed field path. */
export type IndexedFields = Map<string, IndexedValue[]>;
export type IndexedValue = string | number | bigint | boolean;

export class Mapping {
  /** Flat: dotted path → mapping (object fields included, with type `object`). */
  readonly fields = new Map<string, FieldMapping>();
  dynamic: boolean | 'strict' = true;

  /** Adds explicit mappings (`{ properties: {...}, dynamic? }`); throws on a type change. */
  merge(mappings: unknown): void {
    if (mappings === undefined || mappings === null) return;
    if (typeof mappings !== 'object' || Array.isArray(mappings)) {
      throw esErrors.mapperParsing('Root mapping definition has unsupported parameters');
    }
    const m = mappings as { properties?: unknown; dynamic?: unknown };
    if (m.dynamic !== undefined) {
      if (m.dynamic === 'strict') this.dynamic = 'strict';
      else this.dynamic = m.dynamic === true || m.dynamic === 'true';
    }
    const incoming = new Map<string, FieldMapping>();
    flattenProperties(m.properties, '', incoming);
    for (const [path, field] of incoming) {
      const have = this.fields.get(path);
      if (have && have.type !== field.type) {
        throw esErrors.illegalArgument(
          `mapper [${path}] cannot be changed from type [${have.type}] to [${field.type}]`,
        );
      }
    }
    for (const [path, field] of incoming) {
      this.fields.set(path, { ...this.fields.get(path), ...field });
    }
  }

  /** `{ properties: {...} }` in Elasticsearch's nested form. */
  toJSON(): Record<string, unknown> {
    const root: Record<string, unknown> = {};
    const paths = [...this.fields.keys()].sort();
    for (const path of paths) {
      const field = this.fields.get(path)!;
      const parts = path.split('.');
      let level = root;
      for (const part of parts.slice(0, -1)) {
        const parent = level[part] as { properties?: Record<string, unknown> } | undefined;
        if (!parent) break;
        parent.properties ??= {};
        level = parent.properties;
      }
      const { type, ...rest } = field;
      level[parts.at(-1)!] = type === 'object' ? { ...rest } : { type, ...rest };
    }
    const out: Record<string, unknown> = {};
    if (this.dynamic !== true) out.dynamic = String(this.dynamic);
    if (paths.length > 0) out.properties = root;
    return out;
  }

  /**
   * Resolves a field name as a query names it: a mapped path, or `path.sub` of a multi-field.
   * Returns the mapping that applies and where its values are indexed.
   */
  resolve(name: string): { type: FieldType; path: string; ignoreAbove?: number } | undefined {
    const direct = this.fields.get(name);
    if (direct && direct.type !== 'object') {
      return { type: direct.type, path: name, ignoreAbove: direct.ignore_above };
    }
    const dot = name.lastIndexOf('.');
    if (dot > 0) {
      const parent = this.fields.get(name.slice(0, dot));
      const sub = parent?.fields?.[name.slice(dot + 1)];
      if (sub) return { type: sub.type, path: name, ignoreAbove: sub.ignore_above };
    }
    return undefined;
  }

  /**
   * Checks a document against the mapping, maps its new fields (unless `dynamic` says
   * otherwise) and returns what gets indexed. Throws document_parsing_exception (nothing
   * changes then).
   */
  index(source: Record<string, unknown>, id: string): IndexedFields {
    const added = new Map<string, FieldMapping>();
    const indexed: IndexedFields = new Map();
    this.#walk(source, '', id, added, indexed);
    for (const [path, field] of added) this.fields.set(path, field);
    return indexed;
  }

  #walk(
    object: Record<string, unknown>,
    prefix: string,
    id: string,
    added: Map<string, FieldMapping>,
    indexed: IndexedFields,
  ): void {
    for (const [name, raw] of Object.entries(object)) {
      if (name === '') {
        throw esErrors.documentParsing('field name cannot be an empty string');
      }
      const path = prefix + name;
      const values = Array.isArray(raw) ? raw.flat(Number.POSITIVE_INFINITY) : [raw];
      for (const value of values) {
        if (value === null || value === undefined) continue;
        let field = this.fields.get(path) ?? added.get(path);
        if (!field) {
          if (this.dynamic === 'strict') {
            throw new EsApiError(
              400,
              'strict_dynamic_mapping_exception',
              `[1:2] mapping set to strict, dynamic introduction of [${name}] within [_doc] is not allowed`,
            );
          }
          if (this.dynamic === false) continue;
          field = dynamicMapping(value);
          added.set(path, field);
        }
        if (field.type === 'object') {
          if (typeof value !== 'object') {
            throw esErrors.documentParsing(
              `object mapping for [${path}] tried to parse field [${name}] as object, but found a concrete value`,
            );
          }
          this.#walk(value as Record<string, unknown>, `${path}.`, id, added, indexed);
          continue;
        }
        const normalized = coerce(field.type, value, path, id);
        // `index: false` fields and `binary` are kept in _source only, never searchable.
        if (field.index !== false && field.type !== 'binary') push(indexed, path, normalized);
        for (const [sub, subField] of Object.entries(field.fields ?? {})) {
          const text = String(value);
          if (subField.ignore_above !== undefined && text.length > subField.ignore_above) continue;
          push(indexed, `${path}.${sub}`, coerce(subField.type, value, `${path}.${sub}`, id));
        }
      }
    }
  }
}

function push(indexed: IndexedFields, path: string, value: IndexedValue): void {
  const list = indexed.get(path);
  if (list) list.push(value);
  else indexed.set(path, [value]);
}

function flattenProperties(props: unknown, prefix: string, out: Map<string, FieldMapping>): void {
  if (props === undefined) return;
  if (typeof props !== 'object' || props === null || Array.isArray(props)) {
    throw esErrors.mapperParsing('Expected map for property [properties]');
  }
  for (const [name, def] of Object.entries(props)) {
    if (typeof def !== 'object' || def === null) {
      throw esErrors.mapperParsing(`Expected map for property [${name}]`);
    }
    const d = def as Record<string, unknown>;
    const path = prefix + name;
    const type = (d.type ?? (d.properties ? 'object' : undefined)) as FieldType | undefined;
    if (type === undefined) {
      throw esErrors.mapperParsing(`No type specified for field [${name}]`);
    }
    if (!KNOWN_TYPES.has(type)) {
      throw esErrors.mapperParsing(`No handler for type [${type}] declared on field [${name}]`);
    }
    const { properties, ...params } = d;
    out.set(path, { ...params, type } as FieldMapping);
    if (type === 'object') flattenProperties(properties, `${path}.`, out);
  }
}

function dynamicMapping(value: unknown): FieldMapping {
  switch (typeof value) {
    case 'boolean':
      return { type: 'boolean' };
    case 'number':
      return { type: Number.isInteger(value) ? 'long' : 'float' };
    case 'bigint':
      // Jackson's LONG and BIG_INTEGER tokens both map to long (which refuses the latter).
      return { type: 'long' };
    case 'string':
      if (ISO_DATE.test(value) && !Number.isNaN(parseDate(value))) return { type: 'date' };
      return { type: 'text', fields: { keyword: { type: 'keyword', ignore_above: 256 } } };
    default:
      return { type: 'object' };
  }
}

/** Epoch milliseconds of an ISO date (nanoseconds dropped), NaN when not a date. */
export function parseDate(text: string): number {
  const m = /^(.*?[T ]\d{2}:\d{2}:\d{2})[.,](\d{1,9})(.*)$/.exec(text);
  const normalized = m ? `${m[1]}.${m[2]!.slice(0, 3).padEnd(3, '0')}${m[3]}` : text;
  return Date.parse(normalized.replace(' ', 'T'));
}

function preview(value: unknown): string {
  const text = typeof value === 'string' ? value : stringifyJson(value);
  return text.length > 20 ? `${text.slice(0, 20)}...` : text;
}

/** The indexed form of `value` in a field of `type`; throws document_parsing_exception. */
export function coerce(type: FieldType, value: unknown, path: string, id: string): IndexedValue {
  const fail = (cause: { type: string; reason: string }) =>
    esErrors.documentParsing(
      `failed to parse field [${path}] of type [${type}] in document with id '${id}'. Preview of field's value: '${preview(value)}'`,
      cause,
    );
  if (typeof value === 'object') {
    throw fail({
      type: 'illegal_state_exception',
      reason: `Can't get text on a START_OBJECT at 1:${path.length + 3}`,
    });
  }
  if (isNumericType(type)) {
    if (
      typeof value !== 'number' &&
      typeof value !== 'bigint' &&
      !(typeof value === 'string' && NUMERIC_STRING.test(value))
    ) {
      throw fail({ type: 'number_format_exception', reason: `For input string: "${value}"` });
    }
    if (INTEGER_TYPES.has(type)) {
      const n = exactInteger(value);
      if (n === undefined) {
        throw fail({
          type: 'illegal_argument_exception',
          reason: `[${type}] supports only finite values`,
        });
      }
      const [min, max, name] = INTEGER_RANGES[type as keyof typeof INTEGER_RANGES];
      if (n < min || n > max) {
        throw fail({
          type: 'input_coercion_exception',
          reason: `Numeric value (${String(value).trim()}) out of range of ${name} (${min} - ${max})`,
        });
      }
      return n >= MIN_SAFE && n <= MAX_SAFE ? Number(n) : n;
    }
    const n = Number(value);
    if (!Number.isFinite(n)) {
      throw fail({
        type: 'illegal_argument_exception',
        reason: `[${type}] supports only finite values`,
      });
    }
    return n;
  }
  switch (type) {
    case 'date': {
      const ms = typeof value === 'number' ? value : parseDate(String(value));
      if (typeof value === 'boolean' || Number.isNaN(ms)) {
        throw fail({
          type: 'illegal_argument_exception',
          reason: `failed to parse date field [${String(value)}] with format [strict_date_optional_time||epoch_millis]`,
        });
      }
      return ms;
    }
    case 'binary':
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
        throw fail({
          type: 'illegal_argument_exception',
          reason: 'Illegal base64 character',
        });
      }
      return value;
    case 'boolean':
      if (value === true || value === 'true') return true;
      if (value === false || value === 'false' || value === '') return false;
      throw fail({
        type: 'illegal_argument_exception',
        reason: `Failed to parse value [${String(value)}] as only [true] or [false] are allowed.`,
      });
    default:
      return String(value);
  }
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const INTEGER_RANGES = {
  long: [-(2n ** 63n), 2n ** 63n - 1n, 'long'],
  integer: [-(2n ** 31n), 2n ** 31n - 1n, 'int'],
  short: [-(2n ** 15n), 2n ** 15n - 1n, 'short'],
  byte: [-(2n ** 7n), 2n ** 7n - 1n, 'byte'],
  unsigned_long: [0n, 2n ** 64n - 1n, 'unsigned_long'],
} as const;

/**
 * The integer an integer field indexes for a number or numeric string, exactly: digits are read
 * as digits, a fraction is truncated (ES's `coerce`). Undefined for infinities and NaN.
 */
function exactInteger(value: number | bigint | string): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'string') {
    const digits = /^\s*([+-]?\d+)(?:\.\d*)?\s*$/.exec(value);
    if (digits) return BigInt(digits[1]!);
  }
  const n = Number(value);
  if (!Number.isFinite(n)) return undefined;
  return BigInt(Math.trunc(n));
}

/** Compares two indexed numbers exactly, whether number or bigint. */
export function compareNumbers(a: IndexedValue, b: IndexedValue): number {
  if (typeof a === 'bigint' || typeof b === 'bigint') {
    const x = typeof a === 'bigint' ? a : Number.isInteger(Number(a)) ? BigInt(Number(a)) : a;
    const y = typeof b === 'bigint' ? b : Number.isInteger(Number(b)) ? BigInt(Number(b)) : b;
    if (typeof x === 'bigint' && typeof y === 'bigint') return x < y ? -1 : x > y ? 1 : 0;
    return Number(x) - Number(y);
  }
  return Number(a) - Number(b);
}

/** Lower-cased word tokens, roughly what the standard analyzer makes of a text field. */
export function tokens(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}_]+/gu) ?? [];
}
