import { BackendUnavailableError, NotFoundError, type TasklogError } from '../../errors.js';
import { type AwsService, awsError, awsErrorFacts } from '../shared/aws-errors.js';

// The one mapping of S3 SDK errors onto tasklog's, and the S3 answers that are not failures where
// they happen (a missing key, an upload gone, a call the server lacks).

const S3: AwsService = {
  name: 'S3',
  credentialsHint: 'or s3.role_arn',
  regionHint: 'set s3.region or AWS_REGION',
};

/**
 * The one place S3 SDK errors become tasklog errors. Every message names the bucket and the key
 * (or prefix), every error keeps the SDK's as `cause`. NoSuchUpload is handled where it happens.
 * What every AWS backend reports alike (credentials, region, network, throttling) is `awsError`'s.
 */
export function s3Error(
  err: unknown,
  bucket: string,
  key: string | undefined,
  action: string,
): TasklogError {
  const where = key === undefined ? `bucket ${bucket}` : `s3://${bucket}/${key}`;
  return awsError(err, S3, action, where, ({ name, status }, cause) => {
    if (name === 'NoSuchBucket' || (key === undefined && status === 404)) {
      return new BackendUnavailableError(
        `bucket ${bucket} does not exist; create it or fix store.url (while trying to ${action} ${where})`,
        cause,
      );
    }
    if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) {
      return new NotFoundError(`no log stored at ${where}`, cause);
    }
    return undefined;
  });
}

/** GetObject answers `NoSuchKey`; HeadObject, having no body, only `NotFound` (404). */
export function isMissingKey(err: unknown): boolean {
  const { name, status } = awsErrorFacts(err);
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

/** The multipart upload is no longer there: completed, aborted or expired. */
export function isUploadGone(err: unknown): boolean {
  const { name, status } = awsErrorFacts(err);
  return name === 'NoSuchUpload' || status === 404;
}

/** A conditional request (`CopySourceIfMatch`) found the object changed since it was looked at. */
export function isPreconditionFailed(err: unknown): boolean {
  const { name, status } = awsErrorFacts(err);
  return name === 'PreconditionFailed' || status === 412;
}

/** NotImplemented (501) or MethodNotAllowed (405): the server lacks the API, e.g. s3rver 3.7. */
export function isNotImplemented(err: unknown): boolean {
  const { name, status } = awsErrorFacts(err);
  return (
    name === 'NotImplemented' || name === 'MethodNotAllowed' || status === 501 || status === 405
  );
}
