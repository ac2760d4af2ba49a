#!/usr/bin/env node
// The emulators are TypeScript run from source (as the tests run them): tsx is registered here,
// resolved from this package rather than from the caller's working directory, and then the
// command itself (cli.ts) is loaded.
import { register } from 'tsx/esm/api';

register();
await import('../cli.ts');
