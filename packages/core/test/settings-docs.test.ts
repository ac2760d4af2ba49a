import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { settingsReference } from '../src/config/reference.js';
import { SETTINGS_BEGIN, SETTINGS_END, settingsTable } from '../src/config/reference-table.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
const docs = ['README.md', 'docs/AIRFLOW.md', 'docs/ARCHITECTURE.md'].map((p) => ({
  path: p,
  text: readFileSync(new URL(`../../../${p}`, import.meta.url), 'utf8'),
}));

describe('the documented settings', () => {
  it("README's table of every setting is the one the schema gives (run `pnpm docs:settings`)", () => {
    const start = readme.indexOf(SETTINGS_BEGIN) + SETTINGS_BEGIN.length;
    const end = readme.indexOf(SETTINGS_END);
    // Compared cell by cell: the formatter pads the columns of the README's copy.
    const cells = (table: string) =>
      table
        .trim()
        .split('\n')
        .map((row) => row.split(/(?<!\\)\|/).map((c) => c.trim().replace(/^-+$/, '---')));
    expect(cells(readme.slice(start, end))).toEqual(cells(settingsTable()));
  });

  it('every other table with a default column shows the default the schema declares', () => {
    const declared = new Map(settingsReference().map((r) => [r.key, r.default]));
    const plain = (s: string) => s.replace(/[`"]/g, '').trim();
    let checked = 0;
    for (const { path, text } of docs) {
      let defaultColumn = -1;
      for (const line of text.split('\n')) {
        if (!line.startsWith('|')) {
          defaultColumn = -1;
          continue;
        }
        const cells = line
          .split('|')
          .slice(1, -1)
          .map((c) => c.trim());
        const header = cells.indexOf('default');
        if (header >= 0) {
          defaultColumn = header;
          continue;
        }
        const key = /^`([a-z0-9_]+\.[a-z0-9_]+)`$/.exec(cells[0] ?? '')?.[1];
        if (defaultColumn < 0 || key === undefined || !declared.has(key)) continue;
        const shown = plain((cells[defaultColumn] ?? '').replace(/\s*\(.*\)$/, ''));
        expect({ path, key, default: shown }).toEqual({
          path,
          key,
          default: plain(declared.get(key)!),
        });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(settingsReference().length);
  });
});
