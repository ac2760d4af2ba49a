// Rewrites the README's table of settings from the config schema (`pnpm docs:settings`).
import { readFileSync, writeFileSync } from 'node:fs';
import { withSettingsTable } from '../packages/core/src/config/reference-table.js';

const path = new URL('../README.md', import.meta.url);
writeFileSync(path, withSettingsTable(readFileSync(path, 'utf8')));
