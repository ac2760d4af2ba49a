export { CloudWatchApiError } from './api-error.js';
export type {
  CloudWatchEmulator,
  CloudWatchEmulatorOptions,
  CloudWatchRequestLogEntry,
} from './cloudwatch-emulator.js';
export { startCloudWatchEmulator } from './cloudwatch-emulator.js';
export { compileFilterPattern } from './filter-pattern.js';
export {
  EVENT_OVERHEAD,
  MAX_BATCH_BYTES,
  MAX_BATCH_EVENTS,
  MAX_EVENT_MESSAGE_BYTES,
} from './limits.js';
export type { StoredEvent } from './stream-state.js';
