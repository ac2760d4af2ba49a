export type {
  CloudLoggingEmulator,
  CloudLoggingEmulatorOptions,
  RequestLogEntry,
} from './cloud-logging-emulator.js';
export { loggingProtoDirs, startCloudLoggingEmulator } from './cloud-logging-emulator.js';
export type { StoredEntry } from './entry-store.js';
export {
  Code,
  EntryStore,
  LoggingApiError,
  MAX_ENTRY_BYTES,
  MAX_REQUEST_BYTES,
} from './entry-store.js';
export { compileFilter, FilterSyntaxError } from './filter.js';
