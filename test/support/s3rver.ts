export * from '../emulators/s3/index.js';
