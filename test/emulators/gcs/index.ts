export type {
  FaultAction,
  FaultHandle,
  FaultMatch,
  FaultRule,
  FaultStatus,
  RandomFaultKind,
  RandomFaultOptions,
} from '../shared/fault-injector.js';
export { FaultInjector } from '../shared/fault-injector.js';
export { GcsApiError } from './api-error.js';
export { crc32c, crc32cFromBase64, crc32cToBase64 } from './crc32c.js';
export type { GcsEmulator, GcsEmulatorOptions, RequestLogEntry } from './gcs-emulator.js';
export { startGcsEmulator } from './gcs-emulator.js';
export type { ObjectVersion } from './object-store.js';
