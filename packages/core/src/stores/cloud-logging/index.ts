/**
 * The Google Cloud Logging backend (`cloud-logging://LOG_NAME`, or Airflow's
 * `stackdriver://LOG_NAME`); needs `@google-cloud/logging`.
 */
export { type CloudLoggingSettings, cloudLoggingSettings } from './settings.js';
export {
  CloudLoggingStore,
  type CloudLoggingStoreOptions,
  type LogicalDateSource,
} from './store.js';
