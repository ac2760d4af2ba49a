/** The Google Cloud Storage backend (`gs://bucket/prefix`); needs `@google-cloud/storage`. */
export { type GcsSettings, gcsSettings } from './settings.js';
export { GcsStore, type GcsStoreOptions } from './store.js';
