// S3's limits that tasklog plans around
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).

/** Every part of a multipart upload but the last is at least this large. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
export const MAX_PARTS = 10_000;
/**
 * CopyObject copies at most 5 GB in one request
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html); a larger log keeps no
 * `tasklog-sha256`, and readers that want to trust it read it back.
 */
export const MAX_COPY_SIZE = 5 * 1024 * 1024 * 1024;
/** Keys per DeleteObjects request. */
export const DELETE_BATCH = 1000;
