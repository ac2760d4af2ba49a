import path from 'node:path';
import {
  AIRFLOW_PATH_TEMPLATE,
  type AttemptFilter,
  type AttemptKey,
  attemptKey,
  InvalidInputError,
  PathTemplate,
} from '@tasklog/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f/\\]/;

/** Characters that are legal in ids and tend to upset parsers: separators, regex and URL syntax. */
const TRICKY = [
  ':',
  '+',
  '.',
  ' ',
  '=',
  '-',
  '_',
  '%',
  '[',
  ']',
  '{',
  '}',
  '(',
  ')',
  '*',
  '?',
  '$',
  '^',
  '|',
  '#',
  '~',
  "'",
  '"',
  'é',
  '€',
  '𝄞',
  '日',
  '\u00a0',
  '\u2028',
];

const idChar = fc.oneof(
  fc.constantFrom(...TRICKY),
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);

const airflowRunId = fc
  .record({
    kind: fc.constantFrom(
      'scheduled',
      'manual',
      'backfill',
      'dataset_triggered',
      'asset_triggered',
    ),
    date: fc.date({
      min: new Date('1970-01-01T00:00:00Z'),
      max: new Date('2999-12-31T23:59:59Z'),
      noInvalidDate: true,
    }),
    micros: fc.option(fc.integer({ min: 0, max: 999_999 }), { nil: undefined }),
  })
  .map(({ kind, date, micros }) => {
    const base = date.toISOString().slice(0, 19);
    const fraction = micros === undefined ? '' : `.${String(micros).padStart(6, '0')}`;
    return `${kind}__${base}${fraction}+00:00`;
  });

const id = fc.oneof(
  fc
    .string({ unit: idChar, minLength: 1, maxLength: 40 })
    .filter((s) => s.length <= 250 && s !== '.' && s !== '..' && !FORBIDDEN.test(s)),
  airflowRunId,
  fc.constantFrom('.hidden', '..x', 'x..', '...', 'attempt=1.log', 'map_index=3', 'a.chunks'),
);

const key: fc.Arbitrary<AttemptKey> = fc
  .record({
    dagId: id,
    runId: id,
    taskId: id,
    mapIndex: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 100_000 }), fc.maxSafeNat()),
    tryNumber: fc.oneof(
      fc.integer({ min: 1, max: 100 }),
      fc.maxSafeNat().map((n) => n || 1),
    ),
  })
  .map((k) => attemptKey(k));

const CUSTOM_TEMPLATES = [
  AIRFLOW_PATH_TEMPLATE,
  '{dagId}/{runId}/{taskId}/{mapIndex}/{tryNumber}.log',
  'logs/{dag_id}/{run_id}/{task_id}[/map_{map_index}]/try-{try_number}.txt',
  '{dag_id}/{run_id}/{task_id}[.{map_index}].{try_number}.log',
];

describe('PathTemplate (Airflow layout)', () => {
  const template = new PathTemplate();

  it('renders an unmapped attempt exactly like Airflow', () => {
    const k = attemptKey({ dagId: 'a', runId: 'r', taskId: 't', tryNumber: 1 });
    expect(template.render(k)).toBe('dag_id=a/run_id=r/task_id=t/attempt=1.log');
  });

  it('renders a mapped attempt with its map_index folder', () => {
    const k = attemptKey({ dagId: 'a', runId: 'r', taskId: 't', mapIndex: 3, tryNumber: 2 });
    expect(template.render(k)).toBe('dag_id=a/run_id=r/task_id=t/map_index=3/attempt=2.log');
  });

  it('renders map index 0 as mapped', () => {
    const k = attemptKey({ dagId: 'a', runId: 'r', taskId: 't', mapIndex: 0, tryNumber: 1 });
    expect(template.render(k)).toBe('dag_id=a/run_id=r/task_id=t/map_index=0/attempt=1.log');
  });

  it('keeps Airflow run ids verbatim', () => {
    const k = attemptKey({
      dagId: 'etl',
      runId: 'manual__2024-05-01T10:00:00.123456+00:00',
      taskId: 'load',
      tryNumber: 1,
    });
    expect(template.render(k)).toBe(
      'dag_id=etl/run_id=manual__2024-05-01T10:00:00.123456+00:00/task_id=load/attempt=1.log',
    );
  });

  it('parses back every key it renders', () => {
    fc.assert(
      fc.property(key, (k) => {
        expect(template.parse(template.render(k))).toEqual(k);
      }),
      { numRuns: 2000 },
    );
  });

  it('never renders a path that leaves the base folder', () => {
    const base = path.resolve('/srv/airflow/logs');
    fc.assert(
      fc.property(key, (k) => {
        const rendered = template.render(k);
        const resolved = path.resolve(base, rendered);
        expect(resolved.startsWith(`${base}${path.sep}`)).toBe(true);
        // Nothing is collapsed away: the file sits exactly where the segments say.
        expect(resolved).toBe(`${base}/${rendered}`);
        expect(rendered.split('/')).toHaveLength(k.mapIndex >= 0 ? 5 : 4);
      }),
      { numRuns: 2000 },
    );
  });

  it('does not parse paths that are not attempt logs', () => {
    for (const p of [
      '',
      'dag_id=a/run_id=r/task_id=t/attempt=1.log.chunks',
      'dag_id=a/run_id=r/task_id=t/attempt=0.log',
      'dag_id=a/run_id=r/task_id=t/attempt=01.log',
      'dag_id=a/run_id=r/task_id=t/map_index=-1/attempt=1.log',
      'dag_id=a/run_id=r/task_id=t/map_index=03/attempt=1.log',
      'dag_id=a/run_id=r/task_id=t/.tmp-0123abcd',
      'dag_id=a/run_id=r/attempt=1.log',
      'dag_id=./run_id=r/task_id=t/attempt=1.log',
      'dag_id=a/run_id=../task_id=t/attempt=1.log',
      '/dag_id=a/run_id=r/task_id=t/attempt=1.log',
    ]) {
      expect(template.tryParse(p)).toBeUndefined();
      expect(() => template.parse(p)).toThrow(InvalidInputError);
    }
  });
});

describe('PathTemplate (custom templates)', () => {
  for (const source of CUSTOM_TEMPLATES) {
    it(`either round-trips a key or refuses it, never escaping the base: ${source}`, () => {
      const template = new PathTemplate(source);
      const base = path.resolve('/srv/logs');
      fc.assert(
        fc.property(key, (k) => {
          let rendered: string;
          try {
            rendered = template.render(k);
          } catch (err) {
            // An ambiguous template must say so rather than write where nobody will look.
            expect(err).toBeInstanceOf(InvalidInputError);
            return;
          }
          expect(template.parse(rendered)).toEqual(k);
          expect(path.resolve(base, rendered)).toBe(`${base}/${rendered}`);
        }),
        { numRuns: 500 },
      );
    });
  }
});

describe('PathTemplate.prefix', () => {
  const template = new PathTemplate();

  it.each<[AttemptFilter, string]>([
    [{}, ''],
    [{ dagId: 'a' }, 'dag_id=a/'],
    [{ dagId: 'a', runId: 'r' }, 'dag_id=a/run_id=r/'],
    [{ dagId: 'a', runId: 'r', taskId: 't' }, 'dag_id=a/run_id=r/task_id=t/'],
    [
      { dagId: 'a', runId: 'r', taskId: 't', mapIndex: 3 },
      'dag_id=a/run_id=r/task_id=t/map_index=3/',
    ],
    [{ dagId: 'a', runId: 'r', taskId: 't', mapIndex: -1 }, 'dag_id=a/run_id=r/task_id=t/'],
    [
      { dagId: 'a', runId: 'r', taskId: 't', mapIndex: -1, tryNumber: 2 },
      'dag_id=a/run_id=r/task_id=t/',
    ],
    [{ runId: 'r' }, ''],
    [{ dagId: 'a', taskId: 't' }, 'dag_id=a/'],
  ])('gives the fixed folder for %j', (filter, expected) => {
    expect(template.prefix(filter)).toBe(expected);
  });

  for (const source of CUSTOM_TEMPLATES) {
    it(`is a folder prefix of every matching key's path: ${source}`, () => {
      const custom = new PathTemplate(source);
      const fields = ['dagId', 'runId', 'taskId', 'mapIndex', 'tryNumber'] as const;
      fc.assert(
        fc.property(key, fc.subarray([...fields]), (k, chosen) => {
          let rendered: string;
          try {
            rendered = custom.render(k);
          } catch {
            return;
          }
          const filter: Record<string, unknown> = {};
          for (const f of chosen) filter[f] = k[f];
          const prefix = custom.prefix(filter as AttemptFilter);
          expect(rendered.startsWith(prefix)).toBe(true);
          expect(prefix === '' || prefix.endsWith('/')).toBe(true);
        }),
        { numRuns: 500 },
      );
    });
  }
});

describe('attemptKey validation', () => {
  const valid = { dagId: 'a', runId: 'r', taskId: 't', mapIndex: -1, tryNumber: 1 };

  it.each([
    ['a slash', 'a/b'],
    ['a backslash', 'a\\b'],
    ['NUL', 'a\u0000b'],
    ['a newline', 'a\nb'],
    ['a tab', 'a\tb'],
    ['DEL', 'a\u007fb'],
    ['a C1 control', 'a\u0085b'],
    ['"."', '.'],
    ['".."', '..'],
    ['the empty string', ''],
    ['a 251-character id', 'x'.repeat(251)],
    ['an unpaired high surrogate', 'a\ud800b'],
    ['an unpaired low surrogate', '\udc00'],
  ])('rejects an id with %s', (_label, bad) => {
    for (const field of ['dagId', 'runId', 'taskId'] as const) {
      expect(() => attemptKey({ ...valid, [field]: bad })).toThrow(InvalidInputError);
    }
  });

  it('rejects any id holding a forbidden character', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 10 }),
        fc.constantFrom('/', '\\', '\u0000', '\u0001', '\u001f', '\u007f', '\u009f'),
        fc.string({ maxLength: 10 }),
        (before, bad, after) => {
          expect(() => attemptKey({ ...valid, runId: `${before}${bad}${after}` })).toThrow(
            InvalidInputError,
          );
        },
      ),
    );
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1'])(
    'rejects tryNumber %s',
    (tryNumber) => {
      expect(() => attemptKey({ ...valid, tryNumber })).toThrow(InvalidInputError);
    },
  );

  it.each([-2, 0.5, Number.NaN, '3'])('rejects mapIndex %s', (mapIndex) => {
    expect(() => attemptKey({ ...valid, mapIndex })).toThrow(InvalidInputError);
  });

  it('accepts characters outside the Basic Multilingual Plane', () => {
    expect(attemptKey({ ...valid, taskId: '𝄞 🙂' }).taskId).toBe('𝄞 🙂');
  });

  it('defaults mapIndex to -1', () => {
    expect(attemptKey({ dagId: 'a', runId: 'r', taskId: 't', tryNumber: 1 }).mapIndex).toBe(-1);
  });
});

describe('PathTemplate construction', () => {
  it.each([
    ['an empty template', ''],
    ['an absolute template', '/{dag_id}/{run_id}/{task_id}/{map_index}/{try_number}.log'],
    ['a backslash', '{dag_id}\\{run_id}/{task_id}/{map_index}/{try_number}.log'],
    ['a control character', '{dag_id}/{run_id}\n/{task_id}/{map_index}/{try_number}.log'],
    ['an unknown placeholder', '{dag}/{run_id}/{task_id}/{map_index}/{try_number}.log'],
    ['an unclosed placeholder', '{dag_id/{run_id}/{task_id}/{map_index}/{try_number}.log'],
    ['a stray "}"', 'dag}/{dag_id}/{run_id}/{task_id}/{map_index}/{try_number}.log'],
    ['an unclosed "["', '{dag_id}/{run_id}/{task_id}/[map_index={map_index}/{try_number}.log'],
    ['a stray "]"', '{dag_id}/{run_id}/{task_id}/]{map_index}/{try_number}.log'],
    ['two [...] sections', '{dag_id}/[{map_index}/]{run_id}/{task_id}/[{map_index}/]{try_number}'],
    ['a [...] section without map_index', '{dag_id}/{run_id}/[{task_id}/]{map_index}/{try_number}'],
    ['a missing dag_id', '{run_id}/{task_id}/{map_index}/{try_number}.log'],
    ['a missing try_number', '{dag_id}/{run_id}/{task_id}/{map_index}.log'],
    ['a missing map_index', '{dag_id}/{run_id}/{task_id}/{try_number}.log'],
    ['an empty segment', '{dag_id}//{run_id}/{task_id}/{map_index}/{try_number}.log'],
    ['a ".." segment', '../{dag_id}/{run_id}/{task_id}/{map_index}/{try_number}.log'],
    ['a "." segment', './{dag_id}/{run_id}/{task_id}/{map_index}/{try_number}.log'],
    ['a trailing slash', '{dag_id}/{run_id}/{task_id}/{map_index}/{try_number}/'],
  ])('rejects %s', (_label, source) => {
    expect(() => new PathTemplate(source)).toThrow(InvalidInputError);
  });

  it('accepts camelCase and snake_case placeholders alike', () => {
    const snake = new PathTemplate('{dag_id}/{run_id}/{task_id}/{map_index}/{try_number}.log');
    const camel = new PathTemplate('{dagId}/{runId}/{taskId}/{mapIndex}/{tryNumber}.log');
    const k = attemptKey({ dagId: 'a', runId: 'r', taskId: 't', mapIndex: 2, tryNumber: 1 });
    expect(snake.render(k)).toBe(camel.render(k));
  });
});
