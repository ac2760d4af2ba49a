/**
 * A strict reader of Prometheus' text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format), for tests:
 * any line that is not a well-formed comment, HELP, TYPE or sample throws, naming the line. Also
 * checked: one TYPE per family, before its samples; no series twice; sample names that fit their
 * family's type (a histogram's `_bucket` with `le`, `_sum`, `_count`); cumulative buckets ending
 * in `le="+Inf"` equal to `_count`.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help?: string;
  samples: Sample[];
}

export interface Exposition {
  families: Map<string, Family>;
  samples: Sample[];
  /** The sum of the samples named `name` whose labels include `labels` (0 when none). */
  value(name: string, labels?: Record<string, string>): number;
  /** Whether some sample is named `name` (with `labels`). */
  has(name: string, labels?: Record<string, string>): boolean;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const FLOAT = /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

export function parsePrometheusText(text: string): Exposition {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition must end in \\n');
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  const typed = new Set<string>();
  const lines = text.split('\n').slice(0, -1);
  for (const [i, line] of lines.entries()) {
    const fail = (why: string): never => {
      throw new Error(`line ${i + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) {
        if (/^#\s*(HELP|TYPE)\b/.test(line)) fail('a malformed HELP or TYPE line');
        continue; // a plain comment
      }
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) fail('not a metric name');
      const family: Family = families.get(name) ?? { name, type: 'untyped', samples: [] };
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) fail('an unknown type');
        if (family.samples.length > 0 || typed.has(name)) {
          fail('a second TYPE, or a TYPE after samples');
        }
        typed.add(name);
        family.type = rest as Family['type'];
      } else {
        if (family.help !== undefined) fail('a second HELP');
        family.help = rest;
      }
      families.set(name, family);
      continue;
    }
    const sample = parseSample(line, fail);
    const series = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`;
    if (seen.has(series)) fail('a series given twice');
    seen.add(series);
    // A sample without HELP or TYPE is allowed: an untyped family of its own.
    let family = familyOf(sample.name, families);
    if (!family) {
      family = { name: sample.name, type: 'untyped', samples: [] };
      families.set(sample.name, family);
    }
    family.samples.push(sample);
    samples.push(sample);
  }
  for (const family of families.values()) checkFamily(family);
  const matches = (s: Sample, name: string, labels: Record<string, string>) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);
  return {
    families,
    samples,
    value: (name, labels = {}) =>
      samples.filter((s) => matches(s, name, labels)).reduce((sum, s) => sum + s.value, 0),
    has: (name, labels = {}) => samples.some((s) => matches(s, name, labels)),
  };
}

function parseSample(line: string, fail: (why: string) => never): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( -?\d+)?$/.exec(line);
  if (!m) fail('not a sample line');
  const [, name, braces, raw] = m as unknown as [string, string, string | undefined, string];
  const labels: Record<string, string> = {};
  if (braces) {
    let rest = braces.slice(1, -1);
    while (rest.length > 0) {
      const l = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest);
      if (!l || !LABEL_NAME.test(l[1]!)) fail('malformed labels');
      const [all, labelName, value] = l as unknown as [string, string, string];
      if (labelName in labels) fail(`the label ${labelName} twice`);
      labels[labelName] = value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(all.length);
    }
  }
  // As Go's strconv.ParseFloat reads it (the format says so): NaN and Inf in any case, which
  // matters because prom-client writes `Nan` for an event-loop histogram with no sample yet.
  let value: number;
  const special = /^([-+]?)(nan|inf|infinity)$/i.exec(raw);
  if (special) {
    const nan = special[2]!.toLowerCase() === 'nan';
    if (nan && special[1]) fail('a signed NaN');
    value = nan ? Number.NaN : special[1] === '-' ? -Infinity : Infinity;
  } else if (FLOAT.test(raw)) value = Number(raw);
  else fail('not a number');
  return { name, labels, value: value! };
}

function familyOf(sampleName: string, families: Map<string, Family>): Family | undefined {
  const own = families.get(sampleName);
  if (own && own.type !== 'histogram' && own.type !== 'summary') return own;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sampleName.endsWith(suffix)) continue;
    const family = families.get(sampleName.slice(0, -suffix.length));
    if (family?.type === 'histogram') return family;
    if (family?.type === 'summary' && suffix !== '_bucket') return family;
  }
  return own?.type === 'summary' ? own : undefined;
}

function checkFamily(family: Family): void {
  const fail = (why: string): never => {
    throw new Error(`${family.name}: ${why}`);
  };
  if (family.type === 'counter') {
    for (const s of family.samples) if (!(s.value >= 0)) fail('a counter below 0 or NaN');
  }
  if (family.type !== 'histogram') return;
  // Per series (labels without `le`): buckets rising to +Inf, which equals _count.
  const groups = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const id = JSON.stringify(Object.entries(rest).sort());
    const group = groups.get(id) ?? { buckets: [] };
    groups.set(id, group);
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) fail('a bucket without le');
      group.buckets.push([le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), s.value]);
    } else if (s.name.endsWith('_count')) group.count = s.value;
  }
  for (const { buckets, count } of groups.values()) {
    buckets.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < buckets.length; i++) {
      if (buckets[i]![1] < buckets[i - 1]![1]) fail('buckets that are not cumulative');
    }
    const last = buckets.at(-1);
    if (!last || last[0] !== Number.POSITIVE_INFINITY) fail('no le="+Inf" bucket');
    if (count !== last![1]) fail('a +Inf bucket that differs from _count');
  }
}
