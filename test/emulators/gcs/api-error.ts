/**
 * An error answered in the JSON API's format:
 * `{ "error": { "code", "message", "errors": [{ "domain", "reason", "message", ... }] } }`
 * (https://cloud.google.com/storage/docs/json_api/v1/status-codes).
 */
export class GcsApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly extra: Record<string, string> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'GcsApiError';
  }

  toJSON(): unknown {
    return {
      error: {
        code: this.status,
        message: this.message,
        errors: [{ message: this.message, domain: 'global', reason: this.reason, ...this.extra }],
      },
    };
  }
}

export const errors = {
  invalid: (message: string) => new GcsApiError(400, 'invalid', message),
  required: (what: string) =>
    new GcsApiError(400, 'required', `Required${what ? ` ${what}` : ''}`, {
      locationType: 'parameter',
      location: what,
    }),
  bucketNotFound: () => new GcsApiError(404, 'notFound', 'The specified bucket does not exist.'),
  objectNotFound: (bucket: string, name: string) =>
    new GcsApiError(404, 'notFound', `No such object: ${bucket}/${name}`),
  uploadNotFound: () => new GcsApiError(404, 'notFound', 'No such upload session.'),
  notFound: (what: string) => new GcsApiError(404, 'notFound', `Not Found: ${what}`),
  conflict: (message: string) => new GcsApiError(409, 'conflict', message),
  conditionNotMet: (header: 'If-Match' | 'If-None-Match' = 'If-Match') =>
    new GcsApiError(
      412,
      'conditionNotMet',
      'At least one of the pre-conditions you specified did not hold.',
      { locationType: 'header', location: header },
    ),
  rangeNotSatisfiable: (size: number) =>
    new GcsApiError(
      416,
      'requestedRangeNotSatisfiable',
      'The requested range cannot be satisfied.',
      { locationType: 'header', location: 'Range' },
      { 'Content-Range': `bytes */${size}` },
    ),
  uploadCancelled: () => new GcsApiError(499, 'clientClosedRequest', 'Upload was cancelled.'),
  notImplemented: (what: string) =>
    new GcsApiError(501, 'notImplemented', `${what} is not implemented by this emulator.`),
  methodNotAllowed: () => new GcsApiError(405, 'methodNotAllowed', 'Method not allowed.'),
  injected: (status: number) => {
    switch (status) {
      case 429:
        return new GcsApiError(
          429,
          'rateLimitExceeded',
          'The rate of change requests to the object is too high. Please slow down.',
        );
      case 408:
        return new GcsApiError(408, 'requestTimeout', 'Request timed out (injected fault).');
      case 500:
        return new GcsApiError(
          500,
          'backendError',
          'We encountered an internal error. Please try again.',
        );
      default:
        return new GcsApiError(status, 'backendError', 'Backend Error (injected fault).');
    }
  },
};
