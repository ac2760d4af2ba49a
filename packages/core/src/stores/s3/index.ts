/** The S3 backend (`s3://bucket/prefix`); needs `@aws-sdk/client-s3` (and `@aws-sdk/credential-providers` for `role_arn`). */
export { type S3Settings, type S3StoreOptions, s3Settings } from './settings.js';
export { S3Store } from './store.js';
export type { S3SweepOptions, SweepSkip } from './sweep.js';
