export type {
  OpenUpload,
  RecordedRequest,
  S3rverFixture,
  S3rverOptions,
} from './s3rver.js';
export { startS3rver } from './s3rver.js';
