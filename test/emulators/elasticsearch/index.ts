export type {
  BulkItemFaultOptions,
  ElasticsearchEmulator,
  ElasticsearchEmulatorOptions,
  RequestLogEntry,
} from './es-emulator.js';
export { startElasticsearchEmulator } from './es-emulator.js';
export { EsApiError } from './es-errors.js';
export { parseJson, stringifyJson } from './es-json.js';
